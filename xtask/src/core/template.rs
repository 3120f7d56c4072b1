//! Packer template generation: one function from (matrix, kind, build inputs) to a JSON template.
//!
//! Official and test templates come from the same rows and the same naming code, so they cannot
//! drift apart the way the hand-kept templates of the seed did. Pure: no I/O.

use crate::core::matrix::{self, Image, Matrix};
use serde_json::{json, Map, Value};
use std::fmt;

/// The three templates a user can build. Spelled `official`, `test-ebs`, `test-instance` on the
/// command line, in run records and in the `Kind` tag.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Official,
    TestEbs,
    TestInstance,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Official => "official",
            Kind::TestEbs => "test-ebs",
            Kind::TestInstance => "test-instance",
        }
    }

    pub fn is_test(self) -> bool {
        self != Kind::Official
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The credential variables: declared in every template, only ever referenced as `{{user ...}}`.
pub const CREDENTIAL_VARIABLES: [&str; 5] = [
    "aws_account_id",
    "aws_access_key",
    "aws_secret_key",
    "aws_signing_cert",
    "aws_signing_key",
];

/// One builder of a template, typed: what a plan shows and a run record starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBuilder {
    /// The builder name, like `us-east-1-1404-hvm`.
    pub name: String,
    pub region: String,
    pub ami_name: String,
    /// `BUCKET/PREFIX` of an instance-store bundle; `None` for EBS builds.
    pub bundle: Option<String>,
}

/// What a template builds, without the Packer JSON around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub kind: Kind,
    pub builders: Vec<PlannedBuilder>,
}

impl Plan {
    pub fn names(&self) -> Vec<String> {
        self.builders.iter().map(|b| b.name.clone()).collect()
    }

    /// Builders per region, regions sorted.
    pub fn regions(&self) -> std::collections::BTreeMap<&str, usize> {
        let mut regions = std::collections::BTreeMap::new();
        for b in &self.builders {
            *regions.entry(b.region.as_str()).or_default() += 1;
        }
        regions
    }
}

/// Everything besides the matrix that a template depends on.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub kind: Kind,
    pub version: &'a str,
    pub branch: &'a str,
    /// Seconds since the epoch: the S3 bundle prefix and test AMI names. Injectable
    /// (`SOURCE_DATE_EPOCH`) so output is reproducible.
    pub epoch: u64,
    pub git_commit: &'a str,
    pub run_id: &'a str,
    /// Builder names to keep; empty means all.
    pub only: &'a [String],
    /// Set for `--local`: the stand-in endpoints that replace AWS.
    pub local: Option<&'a Local>,
}

/// The local AWS stand-in, as far as the template needs to know it.
#[derive(Debug, Clone)]
pub struct Local {
    pub ec2_endpoint: String,
    pub ssh_port: u16,
    pub key_pair_name: String,
    pub private_key_file: String,
    /// Where x509 uploads and bundles go on the stand-in "instance" (this machine).
    pub work_dir: String,
    /// Stand-in scripts for provisioning and bundling (`build/local/*.sh`).
    pub provision_script: String,
    pub bundle_vol_script: String,
    pub bundle_upload_script: String,
    /// Where the stand-ins record what they were given.
    pub record_file: String,
    /// Builders whose stand-in provisioning fails on purpose, to rehearse a failure.
    pub fail_builders: Vec<String>,
}

impl Local {
    /// The folder of one builder on the stand-in "instance": its uploaded scripts, and later
    /// anything else that must not be shared between builders. The caller creates it.
    pub fn remote_folder(&self, builder: &str) -> String {
        format!("{}/{builder}/remote", self.work_dir)
    }
}

/// The rows a kind builds: every enabled row for official, the test region's rows for tests.
pub fn rows(matrix: &Matrix, kind: Kind) -> Vec<&Image> {
    matrix
        .enabled()
        .filter(|image| match kind {
            Kind::Official => true,
            Kind::TestEbs | Kind::TestInstance => image.region == matrix.settings.test_region,
        })
        .collect()
}

/// The AMI name of a row: official names are the published ones; test names add the kind and
/// the epoch, so a test image can never take (or collide with) an official name.
pub fn ami_name(matrix: &Matrix, inputs: &Inputs, image: &Image) -> String {
    let official = matrix::fill(&matrix.settings.ami_name, inputs.version, image);
    match inputs.kind {
        Kind::Official => official,
        kind => format!("{official} ({kind} {})", inputs.epoch),
    }
}

/// `BUCKET/EPOCH-OSVERSION-pv|hvm`: one bucket per version and region, one folder per build.
pub fn bundle_location(matrix: &Matrix, inputs: &Inputs, image: &Image) -> String {
    let pattern = if inputs.kind.is_test() {
        &matrix.settings.test_bucket
    } else {
        &matrix.settings.bucket
    };
    format!(
        "{}/{}-{}-{}",
        matrix::fill(pattern, inputs.version, image),
        inputs.epoch,
        image.os_version,
        image.virt_short()
    )
}

/// The builders of the template [`generate`] would make, typed. Same errors as [`generate`].
pub fn plan(matrix: &Matrix, inputs: &Inputs) -> Result<Plan, String> {
    let chosen = chosen(matrix, inputs)?;
    // The same checks as the template (an EBS build needs its source AMI).
    for image in &chosen {
        builder(matrix, inputs, image)?;
    }
    Ok(Plan {
        kind: inputs.kind,
        builders: chosen
            .iter()
            .map(|image| PlannedBuilder {
                name: image.builder_name(),
                region: image.region.clone(),
                ami_name: ami_name(matrix, inputs, image),
                bundle: (inputs.kind != Kind::TestEbs)
                    .then(|| bundle_location(matrix, inputs, image)),
            })
            .collect(),
    })
}

/// The rows of the kind that `--only` keeps, checked.
fn chosen<'m>(matrix: &'m Matrix, inputs: &Inputs) -> Result<Vec<&'m Image>, String> {
    matrix::check_names(matrix, inputs.version)?;
    let all = rows(matrix, inputs.kind);
    if let Some(unknown) = inputs
        .only
        .iter()
        .find(|name| !all.iter().any(|i| &i.builder_name() == *name))
    {
        let valid: Vec<String> = all.iter().map(|i| i.builder_name()).collect();
        return Err(format!(
            "unknown builder `{unknown}` for the {} template; valid names: {}",
            inputs.kind,
            valid.join(", ")
        ));
    }
    let chosen: Vec<&Image> = all
        .into_iter()
        .filter(|i| inputs.only.is_empty() || inputs.only.contains(&i.builder_name()))
        .collect();
    if chosen.is_empty() {
        return Err(format!(
            "the {} template has no builders: no enabled row in `{}` matches",
            inputs.kind,
            matrix::MATRIX_PATH
        ));
    }
    Ok(chosen)
}

/// Generates the template. Errors name what is wrong (unknown `--only` names, rows without an
/// EBS source AMI, names AWS would reject).
pub fn generate(matrix: &Matrix, inputs: &Inputs) -> Result<Value, String> {
    let builders = chosen(matrix, inputs)?
        .iter()
        .map(|image| builder(matrix, inputs, image))
        .collect::<Result<Vec<_>, _>>()?;

    let mut variables = Map::new();
    for name in CREDENTIAL_VARIABLES {
        variables.insert(name.to_string(), json!(""));
    }
    variables.insert("launch_size".into(), json!(matrix.settings.launch_size));
    variables.insert("ssh_user".into(), json!(matrix.settings.ssh_user));

    Ok(json!({
        "description": format!(
            "{} {} images, version {}, branch {} (generated by `cargo xtask`; do not edit)",
            matrix.settings.project, inputs.kind, inputs.version, inputs.branch
        ),
        "variables": variables,
        "sensitive-variables": ["aws_access_key", "aws_secret_key"],
        "builders": builders,
        "provisioners": [provisioner(matrix, inputs, &builders)],
    }))
}

fn user(name: &str) -> Value {
    json!(format!("{{{{user `{name}`}}}}"))
}

fn builder(matrix: &Matrix, inputs: &Inputs, image: &Image) -> Result<Value, String> {
    let name = image.builder_name();
    let public = inputs.kind == Kind::Official && matrix.settings.public;
    let tags = tags(matrix, inputs);
    let mut b = json!({
        "name": name,
        "access_key": user("aws_access_key"),
        "secret_key": user("aws_secret_key"),
        "region": image.region,
        "instance_type": user("launch_size"),
        "ssh_username": user("ssh_user"),
        "ami_name": ami_name(matrix, inputs, image),
        "ami_description": matrix.settings.ami_description,
        "ami_groups": if public { json!(["all"]) } else { json!([]) },
        "ami_virtualization_type": image.virtualization,
        "ena_support": false,
        "sriov_support": false,
        "tags": tags,
        "run_tags": tags,
    });
    let fields = b.as_object_mut().expect("builder is an object");
    if inputs.kind == Kind::TestEbs {
        let source = image.ebs_ami.as_ref().ok_or_else(|| {
            format!(
                "`{name}` has no `ebs_ami` in `{}`: an EBS build needs an EBS-backed source AMI",
                matrix::MATRIX_PATH
            )
        })?;
        fields.insert("type".into(), json!("amazon-ebs"));
        fields.insert("source_ami".into(), json!(source));
        fields.insert("snapshot_tags".into(), tags.clone());
        // Volumes of the build instance: tagged so a killed build's left-overs can be found.
        fields.insert("run_volume_tags".into(), tags);
    } else {
        let bundle = bundle_location(matrix, inputs, image);
        fields.insert("type".into(), json!("amazon-instance"));
        fields.insert("source_ami".into(), json!(image.instance_store_ami));
        fields.insert("account_id".into(), user("aws_account_id"));
        fields.insert("x509_cert_path".into(), user("aws_signing_cert"));
        fields.insert("x509_key_path".into(), user("aws_signing_key"));
        fields.insert("s3_bucket".into(), json!(bundle));
        let (vol, upload) = bundle_commands(inputs, image);
        fields.insert("bundle_vol_command".into(), json!(vol));
        fields.insert("bundle_upload_command".into(), json!(upload));
    }
    if let Some(local) = inputs.local {
        for (key, value) in [
            ("custom_endpoint_ec2", json!(local.ec2_endpoint)),
            ("skip_region_validation", json!(true)),
            ("skip_metadata_api_check", json!(true)),
            ("ssh_host", json!("127.0.0.1")),
            ("ssh_port", json!(local.ssh_port)),
            ("ssh_keypair_name", json!(local.key_pair_name)),
            ("ssh_private_key_file", json!(local.private_key_file)),
        ] {
            fields.insert(key.into(), value);
        }
        if inputs.kind != Kind::TestEbs {
            // Packer creates the bundle folder itself and fails if it exists: keep them apart.
            let dir = format!("{}/{name}", local.work_dir);
            fields.insert("x509_upload_path".into(), json!(format!("{dir}/x509")));
            fields.insert("bundle_destination".into(), json!(format!("{dir}/bundle")));
        }
    }
    Ok(b)
}

fn tags(matrix: &Matrix, inputs: &Inputs) -> Value {
    json!({
        "Project": matrix.settings.project,
        "Version": inputs.version,
        "Branch": inputs.branch,
        "Commit": inputs.git_commit,
        "RunId": inputs.run_id,
        "Kind": inputs.kind.as_str(),
    })
}

/// The bundle commands, with Packer's placeholders. The real ones run the EC2 AMI tools that
/// `provision.sh` installs under `/tmp/ec2`; the local ones run the recording stand-ins.
fn bundle_commands(inputs: &Inputs, image: &Image) -> (String, String) {
    let partition = if image.needs_mbr_partition() {
        " --partition mbr"
    } else {
        ""
    };
    if let Some(local) = inputs.local {
        let name = image.builder_name();
        return (
            format!(
                "sh {} {} {name} -k {{{{.KeyPath}}}} -u {{{{.AccountId}}}} -c {{{{.CertPath}}}} \
                 -r {{{{.Architecture}}}} -e {{{{.PrivatePath}}}}/* -d {{{{.Destination}}}} \
                 -p {{{{.Prefix}}}} --batch --no-filter{partition}",
                local.bundle_vol_script, local.record_file
            ),
            format!(
                "sh {} {} {} {name} -b {{{{.BucketName}}}} -m {{{{.ManifestPath}}}} \
                 -a {{{{.AccessKey}}}} -s {{{{.SecretKey}}}} -d {{{{.BundleDirectory}}}} \
                 --batch --region {{{{.Region}}}} --retry",
                local.bundle_upload_script, local.record_file, local.ec2_endpoint
            ),
        );
    }
    let env = "export EC2_HOME=/tmp/ec2 PATH=/tmp/ec2/bin:$PATH;";
    (
        format!(
            "sudo -n bash -c '{env} ec2-bundle-vol -k {{{{.KeyPath}}}} -u {{{{.AccountId}}}} \
             -c {{{{.CertPath}}}} -r {{{{.Architecture}}}} -e {{{{.PrivatePath}}}}/* \
             -d {{{{.Destination}}}} -p {{{{.Prefix}}}} --batch --no-filter{partition}'"
        ),
        format!(
            "sudo -n bash -c '{env} ec2-upload-bundle -b {{{{.BucketName}}}} \
             -m {{{{.ManifestPath}}}} -a {{{{.AccessKey}}}} -s {{{{.SecretKey}}}} \
             -d {{{{.BundleDirectory}}}} --batch --region {{{{.Region}}}} --retry'"
        ),
    )
}

fn provisioner(matrix: &Matrix, inputs: &Inputs, builders: &[Value]) -> Value {
    let environment = json!([
        format!("COMBOAMI_VERSION={}", inputs.version),
        format!("COMBOAMI_BRANCH={}", inputs.branch),
        format!(
            "EC2_AMI_TOOLS_VERSION={}",
            matrix.settings.ec2_ami_tools_version
        ),
        format!(
            "EC2_API_TOOLS_VERSION={}",
            matrix.settings.ec2_api_tools_version
        ),
    ]);
    match inputs.local {
        // The stand-in "instance" is this machine: never run the real provisioning here.
        Some(local) => {
            let mut environment = environment;
            environment
                .as_array_mut()
                .expect("environment is an array")
                .push(json!(format!("XTASK_STANDIN_RECORD={}", local.record_file)));
            if !local.fail_builders.is_empty() {
                environment
                    .as_array_mut()
                    .expect("environment is an array")
                    .push(json!(format!(
                        "XTASK_STANDIN_FAIL={}",
                        local.fail_builders.join(",")
                    )));
            }
            // Every builder shares the one stand-in "instance", and Packer names its uploaded
            // script `script_NNNN.sh` (4 random digits): builders sharing a folder would delete
            // each other's scripts. Each gets its own folder.
            let overrides: Map<String, Value> = builders
                .iter()
                .filter_map(|b| b["name"].as_str())
                .map(|name| {
                    (
                        name.to_string(),
                        json!({ "remote_folder": local.remote_folder(name) }),
                    )
                })
                .collect();
            json!({
                "type": "shell",
                "script": local.provision_script,
                "environment_vars": environment,
                "remote_folder": local.work_dir,
                "override": overrides,
            })
        }
        None => json!({
            "type": "shell",
            "script": "build/provision.sh",
            "environment_vars": environment,
            "execute_command": "chmod +x {{ .Path }}; {{ .Vars }} sudo -E -n bash '{{ .Path }}'",
        }),
    }
}

/// The template as written to disk and stdout: pretty, sorted keys, trailing newline.
pub fn render(template: &Value) -> String {
    let mut text = serde_json::to_string_pretty(template).expect("a JSON value always serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix() -> Matrix {
        Matrix::parse(include_str!("../../../build/images.json")).unwrap()
    }

    fn inputs(kind: Kind) -> Inputs<'static> {
        Inputs {
            kind,
            version: "2.6.3",
            branch: "2.6",
            epoch: 1_700_000_000,
            git_commit: "0123abc",
            run_id: "test",
            only: &[],
            local: None,
        }
    }

    #[test]
    fn official_has_one_public_instance_builder_per_enabled_row() {
        let t = generate(&matrix(), &inputs(Kind::Official)).unwrap();
        let builders = t["builders"].as_array().unwrap();
        assert_eq!(builders.len(), 32);
        let b = builders
            .iter()
            .find(|b| b["name"] == "us-east-1-1404-hvm")
            .unwrap();
        assert_eq!(b["type"], "amazon-instance");
        assert_eq!(b["ami_groups"], json!(["all"]));
        assert_eq!(b["source_ami"], "ami-eb6b8480");
        assert_eq!(b["ami_name"], "DataStax Auto-Clustering AMI 2.6.3-1404-hvm");
        assert_eq!(
            b["s3_bucket"],
            "comboami-2.6.3-us-east-1/1700000000-1404-hvm"
        );
        assert!(b["bundle_vol_command"]
            .as_str()
            .unwrap()
            .ends_with("--partition mbr'"));
        assert_eq!(b["secret_key"], "{{user `aws_secret_key`}}");
    }

    #[test]
    fn test_templates_are_private_and_never_take_official_names() {
        let official = generate(&matrix(), &inputs(Kind::Official)).unwrap();
        let official_names: Vec<&Value> = official["builders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| &b["ami_name"])
            .collect();
        for kind in [Kind::TestEbs, Kind::TestInstance] {
            let t = generate(&matrix(), &inputs(kind)).unwrap();
            let builders = t["builders"].as_array().unwrap();
            assert_eq!(builders.len(), 4, "{kind}");
            for b in builders {
                assert_eq!(b["ami_groups"], json!([]));
                assert!(!official_names.contains(&&b["ami_name"]));
                assert!(b["name"].as_str().unwrap().starts_with("us-east-1-"));
            }
        }
        let ebs = generate(&matrix(), &inputs(Kind::TestEbs)).unwrap();
        assert_eq!(ebs["builders"][0]["type"], "amazon-ebs");
        assert!(ebs["builders"][0]["snapshot_tags"].is_object());
    }

    #[test]
    fn unknown_only_name_lists_valid_ones() {
        let only = vec!["us-east-1-1404".to_string()];
        let mut i = inputs(Kind::TestEbs);
        i.only = &only;
        let err = generate(&matrix(), &i).unwrap_err();
        assert!(err.contains("unknown builder `us-east-1-1404`"), "{err}");
        assert!(err.contains("us-east-1-1404-hvm"), "{err}");
    }

    #[test]
    fn the_typed_plan_matches_the_template() {
        for kind in [Kind::Official, Kind::TestEbs, Kind::TestInstance] {
            let t = generate(&matrix(), &inputs(kind)).unwrap();
            let p = plan(&matrix(), &inputs(kind)).unwrap();
            let builders = t["builders"].as_array().unwrap();
            assert_eq!(builders.len(), p.builders.len());
            for (b, planned) in builders.iter().zip(&p.builders) {
                assert_eq!(b["name"], planned.name.as_str());
                assert_eq!(b["region"], planned.region.as_str());
                assert_eq!(b["ami_name"], planned.ami_name.as_str());
                assert_eq!(b["s3_bucket"].as_str(), planned.bundle.as_deref());
            }
        }
    }

    #[test]
    fn generation_is_deterministic() {
        let a = render(&generate(&matrix(), &inputs(Kind::Official)).unwrap());
        let b = render(&generate(&matrix(), &inputs(Kind::Official)).unwrap());
        assert_eq!(a, b);
    }
}
