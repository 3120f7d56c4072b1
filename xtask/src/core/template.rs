//! Packer template generation: one function from (matrix, kind, build inputs) to a JSON template.
//!
//! Official and test templates come from the same rows and the same naming code, so they cannot
//! drift apart the way the hand-kept templates of the seed did. Pure: no I/O.

use crate::core::matrix::{self, Image, Matrix};
use crate::core::report;
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
    /// Whether the images are public (`ami_groups: ["all"]`), as the template sets them.
    pub public: bool,
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
    /// Private images even where the kind is public (candidates, `publish --private`).
    pub private: bool,
    /// Where Packer downloads each builder's image report (`BUILDER.json` inside).
    pub report_dir: &'a str,
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
    /// Where x509 uploads, bundles and uploaded scripts go on the stand-in "instance" (this
    /// machine), one folder per builder.
    pub work_dir: String,
    /// The simulated image roots, `BUILDER/` each, and the commands run against them,
    /// `BUILDER.commands`.
    pub image_roots: String,
    /// The folder of stand-in system commands put first on PATH (links to `build/local/standin.sh`).
    pub standin_bin: String,
    /// The fixture repository the stand-in `git` clones ComboAMI from.
    pub comboami_fixture: String,
    /// The folder of fixture zips the stand-in `curl` downloads the EC2 tools from.
    pub downloads: String,
    /// Stand-in scripts for bundling (`build/local/bundle-*.sh`).
    pub bundle_vol_script: String,
    pub bundle_upload_script: String,
    /// Where the stand-ins record what they were given.
    pub record_file: String,
    /// Builders whose stand-in provisioning fails on purpose, to rehearse a failure.
    pub fail_builders: Vec<String>,
    /// Builders whose provisioning bakes another version on purpose, to rehearse a wrong report.
    pub wrong_version_builders: Vec<String>,
}

/// The version a rehearsal of a wrong image report bakes instead of the run's.
pub fn wrong_version(version: &str) -> String {
    format!("{version}-wrong")
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
        public: is_public(matrix, inputs),
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
    variables.insert(
        "aws_session_token".into(),
        json!("{{env `AWS_SESSION_TOKEN`}}"),
    );
    variables.insert("launch_size".into(), json!(matrix.settings.launch_size));
    variables.insert("ssh_user".into(), json!(matrix.settings.ssh_user));

    Ok(json!({
        "description": format!(
            "{} {} images, version {}, branch {} (generated by `cargo xtask`; do not edit)",
            matrix.settings.project, inputs.kind, inputs.version, inputs.branch
        ),
        "variables": variables,
        "sensitive-variables": ["aws_access_key", "aws_secret_key", "aws_session_token"],
        "builders": builders,
        "provisioners": provisioners(matrix, inputs, &builders),
    }))
}

fn user(name: &str) -> Value {
    json!(format!("{{{{user `{name}`}}}}"))
}

fn builder(matrix: &Matrix, inputs: &Inputs, image: &Image) -> Result<Value, String> {
    let name = image.builder_name();
    let public = is_public(matrix, inputs);
    let tags = tags(matrix, inputs);
    let mut b = json!({
        "name": name,
        "access_key": user("aws_access_key"),
        "secret_key": user("aws_secret_key"),
        "region": image.region,
        "instance_type": user("launch_size"),
        "token": user("aws_session_token"),
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
            let dir = builder_work_dir(local, &name);
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

/// The delegation token of temporary credentials for `ec2-upload-bundle` (`-t`), when there is
/// one. Packer fills `{{.Token}}` only when it resolved the keys itself, so the user variable is
/// used directly.
const TOKEN: &str = "{{if user `aws_session_token`}}-t {{user `aws_session_token`}} {{end}}";

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
                 -a {{{{.AccessKey}}}} -s {{{{.SecretKey}}}} {TOKEN}-d {{{{.BundleDirectory}}}} \
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
             {TOKEN}-d {{{{.BundleDirectory}}}} --batch --region {{{{.Region}}}} --retry'"
        ),
    )
}

/// Whether the images of this template are public (`ami_groups: ["all"]`): official builds
/// when `build/images.json` says so, unless the caller asked for private ones.
pub fn is_public(matrix: &Matrix, inputs: &Inputs) -> bool {
    inputs.kind == Kind::Official && matrix.settings.public && !inputs.private
}

/// One builder's folder on the stand-in instance: uploaded scripts, x509 files and bundles of
/// parallel builders must not meet.
pub fn builder_work_dir(local: &Local, builder: &str) -> String {
    format!("{}/{builder}", local.work_dir)
}

/// The provisioning (`build/provision.sh`, the same file on AWS and on the stand-in), then the
/// download of the image report it wrote.
fn provisioners(matrix: &Matrix, inputs: &Inputs, builders: &[Value]) -> Value {
    let environment = |version: &str| {
        vec![
            format!("COMBOAMI_VERSION={version}"),
            format!("COMBOAMI_BRANCH={}", inputs.branch),
            format!("COMBOAMI_COMMIT={}", inputs.git_commit),
            format!("COMBOAMI_ARCHIVES={}", matrix.archives_setting()),
            format!(
                "EC2_AMI_TOOLS_VERSION={}",
                matrix.settings.ec2_ami_tools_version
            ),
            format!(
                "EC2_API_TOOLS_VERSION={}",
                matrix.settings.ec2_api_tools_version
            ),
        ]
    };
    let report_download = |source: String| {
        json!({
            "type": "file",
            "direction": "download",
            "source": source,
            "destination": format!("{}/{{{{build_name}}}}.json", inputs.report_dir),
        })
    };
    let Some(local) = inputs.local else {
        return json!([
            {
                "type": "shell",
                "script": "build/provision.sh",
                "environment_vars": environment(inputs.version),
                "execute_command": "chmod +x {{ .Path }}; {{ .Vars }} sudo -E -n bash '{{ .Path }}'",
            },
            report_download(report::REMOTE_PATH.to_string()),
        ]);
    };
    // The stand-in "instance" is this machine: the script reaches the image's `/` through
    // IMAGE_ROOT, a simulated root per builder, and the system commands through PATH, where
    // recording stand-ins come first.
    let root = format!("{}/{{{{build_name}}}}", local.image_roots);
    // Every builder shares the one stand-in "instance", and Packer names its uploaded script
    // `script_NNNN.sh` (4 random digits): builders sharing a folder would delete each other's
    // scripts. Each gets its own folder.
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
    let local_provisioner = |version: &str| {
        let mut environment = environment(version);
        environment.extend([
            format!("IMAGE_ROOT={root}"),
            format!("XTASK_STANDIN_COMMANDS={root}.commands"),
            format!("XTASK_STANDIN_COMBOAMI={}", local.comboami_fixture),
            format!("XTASK_STANDIN_DOWNLOADS={}", local.downloads),
        ]);
        if !local.fail_builders.is_empty() {
            environment.push(format!(
                "XTASK_STANDIN_FAIL={}",
                local.fail_builders.join(",")
            ));
        }
        json!({
            "type": "shell",
            "script": "build/provision.sh",
            "environment_vars": environment,
            "override": overrides,
            // The real script on this machine: without its stand-ins it would run the real
            // apt-get and friends here, so it does not start without them.
            "execute_command": format!(
                "chmod +x {{{{ .Path }}}}; [ -x '{bin}/apt-get' ] || {{ echo 'the stand-in commands \
                 are missing from {bin}' >&2; exit 1; }}; export XTASK_STANDIN_PATH=\"$PATH\" \
                 PATH='{bin}':\"$PATH\"; {{{{ .Vars }}}} sudo -E -n bash '{{{{ .Path }}}}'",
                bin = local.standin_bin
            ),
        })
    };
    let mut provisioners = vec![local_provisioner(inputs.version)];
    if !local.wrong_version_builders.is_empty() {
        // A rehearsal of a wrong image report: these builders bake another version.
        provisioners[0]["except"] = json!(local.wrong_version_builders);
        let mut wrong = local_provisioner(&wrong_version(inputs.version));
        wrong["only"] = json!(local.wrong_version_builders);
        provisioners.push(wrong);
    }
    provisioners.push(report_download(format!("{root}{}", report::REMOTE_PATH)));
    Value::Array(provisioners)
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
            private: false,
            report_dir: "build/runs/test/reports",
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
                assert_eq!(b["ami_groups"] == json!(["all"]), p.public);
                assert_eq!(b["name"], planned.name.as_str());
                assert_eq!(b["region"], planned.region.as_str());
                assert_eq!(b["ami_name"], planned.ami_name.as_str());
                assert_eq!(b["s3_bucket"].as_str(), planned.bundle.as_deref());
            }
        }
    }

    #[test]
    fn local_builds_run_the_real_provisioning_and_a_wrong_version_only_where_asked() {
        let local = Local {
            ec2_endpoint: "http://127.0.0.1:1".into(),
            ssh_port: 2,
            key_pair_name: "k".into(),
            private_key_file: "/r/id_rsa".into(),
            work_dir: "/r/run/standin".into(),
            image_roots: "/r/run/image-root".into(),
            standin_bin: "/r/run/standin/bin".into(),
            comboami_fixture: "/r/run/standin/comboami.git".into(),
            downloads: "/r/run/standin/downloads".into(),
            bundle_vol_script: "/r/build/local/bundle-vol.sh".into(),
            bundle_upload_script: "/r/build/local/bundle-upload.sh".into(),
            record_file: "/r/run/standin/record.txt".into(),
            fail_builders: vec!["us-east-1-1204-pv".into()],
            wrong_version_builders: vec!["us-east-1-1404-pv".into()],
        };
        let mut i = inputs(Kind::TestEbs);
        i.local = Some(&local);
        let t = generate(&matrix(), &i).unwrap();
        let p = t["provisioners"].as_array().unwrap();
        assert_eq!(p.len(), 3);
        for shell in &p[..2] {
            assert_eq!(shell["script"], "build/provision.sh");
            let env = shell["environment_vars"].to_string();
            assert!(
                env.contains("IMAGE_ROOT=/r/run/image-root/{{build_name}}"),
                "{env}"
            );
            assert!(
                env.contains("XTASK_STANDIN_FAIL=us-east-1-1204-pv"),
                "{env}"
            );
            assert!(shell["execute_command"]
                .as_str()
                .unwrap()
                .contains("PATH='/r/run/standin/bin':"));
            assert_eq!(
                shell["override"]["us-east-1-1404-hvm"]["remote_folder"],
                "/r/run/standin/us-east-1-1404-hvm/remote"
            );
        }
        assert_eq!(p[0]["except"], json!(["us-east-1-1404-pv"]));
        assert!(p[0]["environment_vars"]
            .to_string()
            .contains("COMBOAMI_VERSION=2.6.3\""));
        assert_eq!(p[1]["only"], json!(["us-east-1-1404-pv"]));
        assert!(p[1]["environment_vars"]
            .to_string()
            .contains("COMBOAMI_VERSION=2.6.3-wrong"));
        assert_eq!(p[2]["direction"], "download");
        assert_eq!(
            p[2]["source"],
            "/r/run/image-root/{{build_name}}/tmp/comboami-image-report.json"
        );
        assert_eq!(
            p[2]["destination"],
            "build/runs/test/reports/{{build_name}}.json"
        );
    }

    #[test]
    fn candidates_and_private_publishes_share_with_nobody() {
        let mut i = inputs(Kind::Official);
        i.private = true;
        let t = generate(&matrix(), &i).unwrap();
        for b in t["builders"].as_array().unwrap() {
            assert_eq!(b["ami_groups"], json!([]));
        }
        assert!(!plan(&matrix(), &i).unwrap().public);
        assert!(plan(&matrix(), &inputs(Kind::Official)).unwrap().public);
    }

    #[test]
    fn generation_is_deterministic() {
        let a = render(&generate(&matrix(), &inputs(Kind::Official)).unwrap());
        let b = render(&generate(&matrix(), &inputs(Kind::Official)).unwrap());
        assert_eq!(a, b);
    }
}
