//! Canonical's Ubuntu images as base images: which image a row wants (release, virtualization,
//! root device), the newest one found, the proposals of `cargo xtask base-images`, and the edit
//! of `build/images.json` that changes only the ids. Pure.

use crate::pure::ec2::Image;
use crate::pure::matrix::{Image as Row, Matrix};
use std::collections::BTreeSet;

/// The account Canonical publishes official Ubuntu images from.
pub const CANONICAL: &str = "099720109477";

/// The code name and dotted version of a release (`1404` -> `trusty`, `14.04`).
pub fn release(os_version: &str) -> Option<(&'static str, &'static str)> {
    Some(match os_version {
        "1004" => ("lucid", "10.04"),
        "1204" => ("precise", "12.04"),
        "1404" => ("trusty", "14.04"),
        "1604" => ("xenial", "16.04"),
        "1804" => ("bionic", "18.04"),
        "2004" => ("focal", "20.04"),
        "2204" => ("jammy", "22.04"),
        "2404" => ("noble", "24.04"),
        _ => return None,
    })
}

/// The `name` filter matching every official server image of a release (any storage folder).
pub fn name_pattern(os_version: &str) -> Option<String> {
    release(os_version)
        .map(|(code, dotted)| format!("ubuntu/images/*ubuntu-{code}-{dotted}-amd64-server-*"))
}

/// A name as Canonical gives it, for a stand-in's seed images.
pub fn canonical_name(
    os_version: &str,
    virtualization: &str,
    root_device: &str,
    serial: &str,
) -> String {
    let folder = match (virtualization, root_device) {
        ("hvm", "ebs") => "hvm-ssd/",
        ("hvm", _) => "hvm-instance/",
        (_, "ebs") => "ebs/",
        _ => "",
    };
    match release(os_version) {
        Some((code, dotted)) => {
            format!("ubuntu/images/{folder}ubuntu-{code}-{dotted}-amd64-server-{serial}")
        }
        None => format!("ubuntu/images/{folder}ubuntu-{os_version}-amd64-server-{serial}"),
    }
}

/// The field of a row holding its base image of `root_device`.
pub fn field(root_device: &str) -> &'static str {
    if root_device == "ebs" {
        "ebs_ami"
    } else {
        "instance_store_ami"
    }
}

/// Whether `image` is an official server image of the row's release with this virtualization
/// and root device.
fn fits(image: &Image, os_version: &str, virtualization: &str, root_device: &str) -> bool {
    let Some((code, dotted)) = release(os_version) else {
        return false;
    };
    image.owner_id == CANONICAL
        && image.state == "available"
        && image.name.starts_with("ubuntu/images/")
        && image
            .name
            .contains(&format!("ubuntu-{code}-{dotted}-amd64-server-"))
        && image.virtualization_type == virtualization
        && image.root_device_type == root_device
}

/// The newest fitting image (by creation date, then name).
pub fn newest<'a>(
    images: &'a [Image],
    os_version: &str,
    virtualization: &str,
    root_device: &str,
) -> Option<&'a Image> {
    images
        .iter()
        .filter(|i| fits(i, os_version, virtualization, root_device))
        .max_by(|a, b| (&a.creation_date, &a.name).cmp(&(&b.creation_date, &b.name)))
}

/// One base image of one row, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The row's index in `images`.
    pub row: usize,
    pub builder: String,
    pub region: String,
    pub field: &'static str,
    pub old: Option<String>,
    /// The name the row records for it (`FIELD_name`), if any.
    pub old_name: Option<String>,
    /// The old image as AWS describes it, when it still exists.
    pub old_image: Option<Image>,
    pub new: Option<Image>,
}

impl Finding {
    /// Whether a newer image replaces the row's id.
    pub fn newer(&self) -> bool {
        matches!((&self.old, &self.new), (Some(old), Some(new)) if *old != new.id)
            || (self.old.is_none() && self.new.is_some())
    }

    /// Whether the row's recorded name is not the name of the image it is to hold (the cloud
    /// preflight asks for base images by these names).
    pub fn renames(&self) -> bool {
        self.new
            .as_ref()
            .is_some_and(|new| self.old_name.as_deref() != Some(new.name.as_str()))
    }

    /// Whether `--update` changes the row: a newer id, or the name recorded.
    pub fn changes(&self) -> bool {
        self.newer() || self.renames()
    }

    /// The field that records the name of the image in `field`.
    pub fn name_field(&self) -> String {
        format!("{}_name", self.field)
    }
}

/// The rows to look at: every row (enabled or not) of the chosen regions.
pub fn rows<'a>(matrix: &'a Matrix, regions: &[String]) -> Vec<(usize, &'a Row)> {
    matrix
        .images
        .iter()
        .enumerate()
        .filter(|(_, r)| regions.is_empty() || regions.contains(&r.region))
        .collect()
}

/// What each row's base images should be, from the images of its region.
pub fn findings(
    rows: &[(usize, &Row)],
    region_images: &dyn Fn(&str) -> Vec<Image>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (index, row) in rows {
        let images = region_images(&row.region);
        for root in ["instance-store", "ebs"] {
            let old = match root {
                "ebs" => row.ebs_ami.clone(),
                _ => Some(row.instance_store_ami.clone()),
            };
            let new = newest(&images, &row.os_version, &row.virtualization, root).cloned();
            let old_name = row.base_name(root).map(String::from);
            // An EBS base image is optional: only proposed where one exists.
            if old.is_none() && new.is_none() {
                continue;
            }
            out.push(Finding {
                row: *index,
                builder: row.builder_name(),
                region: row.region.clone(),
                field: field(root),
                old_image: old
                    .as_ref()
                    .and_then(|id| images.iter().find(|i| &i.id == id).cloned()),
                old,
                old_name,
                new,
            });
        }
    }
    out
}

fn describe(image: Option<&Image>, id: &str) -> String {
    match image {
        Some(i) => format!("{id} ({}, {})", i.name, date(&i.creation_date)),
        None => format!("{id} (not found: deregistered or not public)"),
    }
}

fn date(creation: &str) -> &str {
    creation.get(..10).unwrap_or(creation)
}

/// The report: one line per base image, old -> new, and the rows that found nothing.
pub fn report(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.builder.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        let old = f.old.as_deref().unwrap_or("(none)");
        let line = match &f.new {
            Some(new) if f.newer() => format!(
                "{}\n{:width$}  {:<18}   -> {}",
                describe(f.old_image.as_ref(), old),
                "",
                "",
                describe(Some(new), &new.id),
            ),
            Some(_) if f.renames() => format!(
                "{} up to date; its name is to be recorded",
                describe(f.old_image.as_ref(), old)
            ),
            Some(_) => format!("{} up to date", describe(f.old_image.as_ref(), old)),
            None => format!(
                "{}: nothing found (keeps its id)",
                describe(f.old_image.as_ref(), old)
            ),
        };
        out.push_str(&format!("{:<width$}  {:<18}  {line}\n", f.builder, f.field));
    }
    out
}

/// Why `build/images.json` could not be edited in place (rows counted from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("cannot find row {0} in `build/images.json`: fix the file (`cargo xtask base-images` reads it) or edit the ids by hand")]
    NoRow(usize),
    #[error("row {0} of `build/images.json` has no `{1}`: edit its ids by hand")]
    NoField(usize, String),
    #[error("row {0} of `build/images.json` has an unterminated id: fix the file")]
    Unterminated(usize),
}

/// `build/images.json` with only the changed ids and names replaced; the rest of the text stays
/// byte for byte. A row without `ebs_ami` gets the field after `instance_store_ami`, a row
/// without a name field gets it after its id.
pub fn apply(text: &str, findings: &[Finding]) -> Result<String, EditError> {
    let mut out = text.to_string();
    for f in findings.iter().filter(|f| f.changes()) {
        let new = f.new.as_ref().expect("a change has a new image");
        let span = row_span(&out, f.row).ok_or(EditError::NoRow(f.row + 1))?;
        let row = f.row + 1;
        let mut edited = out[span.0..span.1].to_string();
        if f.newer() {
            // A new `ebs_ami` goes after the instance-store image and its name.
            let after = if edited.contains("\"instance_store_ami_name\": ") {
                "instance_store_ami_name"
            } else {
                "instance_store_ami"
            };
            edited = set_field(&edited, row, f.field, f.old.as_deref(), &new.id, after)?;
        }
        let name_field = f.name_field();
        edited = set_field(
            &edited,
            row,
            &name_field,
            f.old_name.as_deref(),
            &new.name,
            f.field,
        )?;
        out.replace_range(span.0..span.1, &edited);
    }
    Ok(out)
}

/// One row's text with `"field": "old"` made `"field": "new"`, or, when the row has no such
/// field (`old` is `None`), the field added on its own line after the field `after`.
fn set_field(
    row_text: &str,
    row: usize,
    field: &str,
    old: Option<&str>,
    new: &str,
    after: &str,
) -> Result<String, EditError> {
    let new = serde_json::Value::from(new).to_string();
    if let Some(old) = old {
        let from = format!("\"{field}\": {}", serde_json::Value::from(old));
        if !row_text.contains(&from) {
            return Err(EditError::NoField(row, from));
        }
        return Ok(row_text.replacen(&from, &format!("\"{field}\": {new}"), 1));
    }
    let anchor = format!("\"{after}\": \"");
    let start = row_text
        .find(&anchor)
        .ok_or_else(|| EditError::NoField(row, anchor.clone()))?;
    let end = row_text[start + anchor.len()..]
        .find('"')
        .map(|e| start + anchor.len() + e + 1)
        .ok_or(EditError::Unterminated(row))?;
    let indent: String = row_text[..start]
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    Ok(format!(
        "{},\n{indent}\"{field}\": {new}{}",
        &row_text[..end],
        &row_text[end..]
    ))
}

/// The byte range of the `index`th object of the `images` array.
fn row_span(text: &str, index: usize) -> Option<(usize, usize)> {
    let images = text.find("\"images\"")?;
    let open = images + text[images..].find('[')?;
    let mut depth = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut row = 0;
    let mut start = None;
    for (offset, c) in text[open + 1..].char_indices() {
        let at = open + 1 + offset;
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => {
                if depth == 0 {
                    start = Some(at);
                }
                depth += 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    if row == index {
                        return start.map(|s| (s, at + 1));
                    }
                    row += 1;
                }
            }
            ']' if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

/// The rows a new region would get: one per release and virtualization of the matrix, with
/// the newest instance-store (and EBS) image found there.
pub fn new_region_rows(
    matrix: &Matrix,
    region: &str,
    images: &[Image],
) -> (Vec<String>, Vec<String>) {
    let kinds: BTreeSet<(&str, &str)> = matrix
        .images
        .iter()
        .map(|r| (r.os_version.as_str(), r.virtualization.as_str()))
        .collect();
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (os, virt) in kinds {
        match newest(images, os, virt, "instance-store") {
            Some(store) => {
                let mut row = format!(
                    "        {{\n            \"region\": \"{region}\",\n            \"os_version\": \"{os}\",\n            \"virtualization\": \"{virt}\",\n            \"instance_store_ami\": \"{}\",\n",
                    store.id
                );
                let name = |image: &Image| serde_json::Value::from(image.name.as_str());
                row.push_str(&format!(
                    "            \"instance_store_ami_name\": {},\n",
                    name(store)
                ));
                if let Some(ebs) = newest(images, os, virt, "ebs") {
                    row.push_str(&format!("            \"ebs_ami\": \"{}\",\n", ebs.id));
                    row.push_str(&format!("            \"ebs_ami_name\": {},\n", name(ebs)));
                }
                row.push_str("            \"enabled\": true\n        }");
                rows.push(row);
            }
            None => missing.push(format!(
                "{region}-{os}-{}: no instance-store {virt} image of Ubuntu {} found",
                if virt == "paravirtual" { "pv" } else { virt },
                release(os).map(|r| r.1).unwrap_or(os)
            )),
        }
    }
    (rows, missing)
}

/// `build/images.json` with `region` added to `settings.regions` (the allow-list every row's
/// region must be in), after its last entry.
pub fn allow_region(text: &str, region: &str) -> Option<String> {
    let key = text.find("\"regions\"")?;
    let close = key + text[key..].find(']')?;
    let list = &text[key..close];
    if list.contains(&format!("\"{region}\"")) {
        return Some(text.to_string());
    }
    let last = key + list.rfind('"')?;
    let line_start = text[..last].rfind('\n').map_or(0, |i| i + 1);
    let indent: String = text[line_start..]
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    let mut out = text.to_string();
    out.insert_str(last + 1, &format!(",\n{indent}\"{region}\""));
    Some(out)
}

/// `build/images.json` with `rows` appended to `images`.
pub fn append_rows(text: &str, rows: &[String]) -> Option<String> {
    if rows.is_empty() {
        return Some(text.to_string());
    }
    let count = crate::pure::json::parse::<serde_json::Value>(text).ok()?["images"]
        .as_array()?
        .len();
    let last = if count == 0 {
        None
    } else {
        row_span(text, count - 1)
    };
    let at = match last {
        Some((_, end)) => end,
        None => return None,
    };
    let mut out = text.to_string();
    out.insert_str(at, &format!(",\n{}", rows.join(",\n")));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{
    "settings": {"x": "{\"images\": ["},
    "images": [
        {
            "region": "us-east-1",
            "os_version": "1404",
            "virtualization": "hvm",
            "instance_store_ami": "ami-11111111",
            "enabled": true
        },
        {
            "region": "us-east-1",
            "os_version": "1404",
            "virtualization": "hvm",
            "instance_store_ami": "ami-11111111",
            "ebs_ami": "ami-22222222",
            "enabled": false
        }
    ]
}
"#;

    fn image(id: &str, virt: &str, root: &str, os: &str, date: &str) -> Image {
        Image {
            id: id.into(),
            name: canonical_name(os, virt, root, &date.replace('-', "")),
            state: "available".into(),
            virtualization_type: virt.into(),
            root_device_type: root.into(),
            creation_date: format!("{date}T00:00:00.000Z"),
            owner_id: CANONICAL.into(),
            ..Image::default()
        }
    }

    #[test]
    fn newest_fits_release_virtualization_and_root_device() {
        let images = vec![
            image("ami-a", "hvm", "instance-store", "1404", "2015-01-01"),
            image("ami-b", "hvm", "instance-store", "1404", "2016-01-01"),
            image("ami-c", "hvm", "ebs", "1404", "2017-01-01"),
            image(
                "ami-d",
                "paravirtual",
                "instance-store",
                "1404",
                "2018-01-01",
            ),
            image("ami-e", "hvm", "instance-store", "1204", "2019-01-01"),
        ];
        assert_eq!(
            newest(&images, "1404", "hvm", "instance-store").unwrap().id,
            "ami-b"
        );
        assert_eq!(newest(&images, "1404", "hvm", "ebs").unwrap().id, "ami-c");
        let mut foreign = image("ami-f", "hvm", "instance-store", "1404", "2020-01-01");
        foreign.owner_id = "111111111111".into();
        assert_eq!(newest(&[foreign], "1404", "hvm", "instance-store"), None);
    }

    #[test]
    fn apply_changes_only_the_ids_and_names_of_the_right_row() {
        let matrix = crate::pure::matrix::Matrix {
            settings: serde_json::from_value(serde_json::json!({
                "project": "p", "ami_name": "n {version}-{os_version}-{virt}", "ami_description": "d",
                "bucket": "b-{version}-{region}", "test_bucket": "t-{version}-{region}", "public": true,
                "launch_size": "m3.medium", "ssh_user": "ubuntu", "ec2_ami_tools_version": "1",
                "ec2_api_tools_version": "1", "test_region": "us-east-1", "regions": ["us-east-1"]
            }))
            .unwrap(),
            images: serde_json::from_value::<serde_json::Value>(crate::pure::json::parse(TEXT).unwrap())
                .map(|v| serde_json::from_value(v["images"].clone()).unwrap())
                .unwrap(),
        };
        let newer = newer_images();
        let rows: Vec<(usize, &Row)> = matrix.images.iter().enumerate().skip(1).collect();
        let found = findings(&rows, &|_| newer.clone());
        let text = apply(TEXT, &found).unwrap();
        // The ids change, and the names the preflight asks by are recorded after them.
        let expected = TEXT.replacen(
            "\"instance_store_ami\": \"ami-11111111\",\n            \"ebs_ami\": \"ami-22222222\"",
            "\"instance_store_ami\": \"ami-33333333\",\n            \"instance_store_ami_name\": \"ubuntu/images/hvm-instance/ubuntu-trusty-14.04-amd64-server-20160101\",\n            \"ebs_ami\": \"ami-44444444\",\n            \"ebs_ami_name\": \"ubuntu/images/hvm-ssd/ubuntu-trusty-14.04-amd64-server-20160101\"",
            1,
        );
        assert_eq!(text, expected);
        assert!(report(&found).contains("-> ami-33333333 (ubuntu/images/hvm-instance/ubuntu-trusty-14.04-amd64-server-20160101, 2016-01-01)"), "{}", report(&found));

        // The first row has no `ebs_ami`: it gets one.
        let rows: Vec<(usize, &Row)> = matrix.images.iter().enumerate().take(1).collect();
        let found = findings(&rows, &|_| newer.clone());
        let text = apply(TEXT, &found).unwrap();
        assert!(text.contains("\"instance_store_ami\": \"ami-33333333\",\n            \"instance_store_ami_name\": \"ubuntu/images/hvm-instance/ubuntu-trusty-14.04-amd64-server-20160101\",\n            \"ebs_ami\": \"ami-44444444\",\n            \"ebs_ami_name\": \"ubuntu/images/hvm-ssd/ubuntu-trusty-14.04-amd64-server-20160101\",\n            \"enabled\": true"), "{text}");
        assert!(text.contains("\"ebs_ami\": \"ami-22222222\""), "{text}");
    }

    /// An old and a newer instance-store image, and a newer EBS image, of 14.04 HVM.
    fn newer_images() -> Vec<Image> {
        vec![
            image(
                "ami-11111111",
                "hvm",
                "instance-store",
                "1404",
                "2015-01-01",
            ),
            image(
                "ami-33333333",
                "hvm",
                "instance-store",
                "1404",
                "2016-01-01",
            ),
            image("ami-44444444", "hvm", "ebs", "1404", "2016-01-01"),
        ]
    }

    /// The rows of a matrix text, as `findings` reads them.
    fn rows_of(text: &str) -> Vec<Row> {
        let value: serde_json::Value = crate::pure::json::parse(text).unwrap();
        serde_json::from_value(value["images"].clone()).unwrap()
    }

    /// With the names recorded, `--update` changes nothing; a stale name alone is replaced, the
    /// id staying.
    #[test]
    fn a_recorded_name_is_kept_and_a_stale_one_replaced() {
        let newer = newer_images();
        let first = rows_of(TEXT);
        let rows: Vec<(usize, &Row)> = first.iter().enumerate().skip(1).collect();
        let text = apply(TEXT, &findings(&rows, &|_| newer.clone())).unwrap();
        let recorded = rows_of(&text);
        let rows: Vec<(usize, &Row)> = recorded.iter().enumerate().skip(1).collect();
        let again = findings(&rows, &|_| newer.clone());
        assert!(again.iter().all(|f| !f.changes()), "{again:#?}");
        assert_eq!(apply(&text, &again).unwrap(), text);

        let stale = text.replacen("server-20160101\"", "server-20150101\"", 1);
        assert_ne!(stale, text);
        let stale_rows = rows_of(&stale);
        let rows: Vec<(usize, &Row)> = stale_rows.iter().enumerate().skip(1).collect();
        let renamed = findings(&rows, &|_| newer.clone());
        let only_names = renamed.iter().filter(|f| f.renames() && !f.newer()).count();
        assert_eq!(only_names, 1, "{renamed:#?}");
        let report = report(&renamed);
        assert!(
            report.contains("up to date; its name is to be recorded"),
            "{report}"
        );
        assert_eq!(apply(&stale, &renamed).unwrap(), text);
    }

    #[test]
    fn a_new_region_gets_rows_and_is_allowed() {
        let text = include_str!("../../../build/images.json");
        let matrix = Matrix::parse(text).unwrap();
        let found: Vec<Image> = [("hvm", "1404"), ("paravirtual", "1404"), ("hvm", "1204")]
            .iter()
            .enumerate()
            .flat_map(|(n, (virt, os))| {
                ["instance-store", "ebs"].map(|root| {
                    let id = format!("ami-{n}{}123456", if root == "ebs" { "e" } else { "a" });
                    image(&id, virt, root, os, "2016-01-01")
                })
            })
            .collect();
        let (rows, missing) = new_region_rows(&matrix, "ca-central-1", &found);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            missing,
            vec!["ca-central-1-1204-pv: no instance-store paravirtual image of Ubuntu 12.04 found"]
        );
        let updated = allow_region(&append_rows(text, &rows).unwrap(), "ca-central-1").unwrap();
        let parsed = Matrix::parse(&updated).unwrap();
        assert_eq!(parsed.images.len(), matrix.images.len() + 3);
        assert!(parsed
            .settings
            .regions
            .contains(&"ca-central-1".to_string()));
        assert!(updated.starts_with(&text[..text.find("\"us-west-2\"").unwrap()]));
    }
}
