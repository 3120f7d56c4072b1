//! Masking of secret values in text that the tool relays or writes. Pure.
//!
//! Packer hides `sensitive-variables` only in its own log; a provisioner or bundle command that
//! echoes a secret puts it in the machine-readable stream. Every line the tool prints or saves
//! passes through [`Masker::mask`].

use std::borrow::Cow;

pub const MASK: &str = "<sensitive>";

#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Secrets and their escaped forms, longest first so a secret containing another is masked
    /// whole.
    needles: Vec<String>,
}

impl Masker {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut needles = Vec::new();
        for secret in secrets {
            if secret.is_empty() {
                continue;
            }
            // As Packer escapes it in machine-readable output, and as JSON escapes it.
            let escaped = secret.replace(',', "%!(PACKER_COMMA)");
            let json = serde_json::to_string(secret).expect("a string serializes");
            for needle in [
                secret.to_string(),
                escaped,
                json[1..json.len() - 1].to_string(),
            ] {
                if !needles.contains(&needle) {
                    needles.push(needle);
                }
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Masker { needles }
    }

    /// What it masks, for a helper process that masks the same (see `packer::relay_main`).
    pub fn needles(&self) -> &[String] {
        &self.needles
    }

    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), MASK));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_plain_and_escaped_forms() {
        let m = Masker::new(["AKIDLOCAL", "se,cr/et+", ""]);
        assert_eq!(m.mask("a AKIDLOCAL b"), format!("a {MASK} b"));
        assert_eq!(
            m.mask("x se%!(PACKER_COMMA)cr/et+ y"),
            format!("x {MASK} y")
        );
        assert_eq!(m.mask("nothing here"), "nothing here");
    }

    #[test]
    fn masks_the_golden_echo() {
        let log = include_str!("../../tests/data/packer-1.6.6-instance-echoes-secret.log");
        assert!(log.contains("secretlocal"));
        let masked = Masker::new(["AKIDLOCAL", "secretlocal"])
            .mask(log)
            .into_owned();
        assert!(!masked.contains("secretlocal") && !masked.contains("AKIDLOCAL"));
        assert!(masked.contains(&format!("-s {MASK}")));
    }
}
