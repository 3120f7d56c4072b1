//! The pure core: strings and data in, data out. Nothing here touches files, processes or the
//! network; the commands around it do the I/O.

pub mod cleanup;
pub mod ds0;
pub mod mask;
pub mod matrix;
pub mod packer_log;
pub mod registry;
pub mod release;
pub mod template;
pub mod version;

/// A JSON syntax or shape error as `line L, column C: MESSAGE`: the position said once, first.
pub fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text);
    format!("line {}, column {}: {message}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_errors_say_the_position_once() {
        let e = serde_json::from_str::<serde_json::Value>("{\n  \"a\": 1,\n}").unwrap_err();
        assert_eq!(super::json_error(&e), "line 3, column 1: trailing comma");
    }
}
