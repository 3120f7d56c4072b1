//! Packer template generation: one function from (matrix, kind, build inputs) to a JSON template.
//!
//! Official and test templates come from the same rows and the same naming code, so they cannot
//! drift apart the way the hand-kept templates of the seed did. Pure: no I/O.

use crate::pure::matrix::{self, Image, Matrix};
use crate::pure::report;
use serde_json::{json, Map, Value};
use std::fmt;

/// The three templates a user can build. Spelled `official`, `test-ebs`, `test-instance` on the
/// command line, in run records and in the `Kind` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// A kind spelled in none of the three ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown kind `{}`: use `official`, `test-ebs` or `test-instance`",
            self.0
        )
    }
}

impl std::error::Error for UnknownKind {}

impl std::str::FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(text: &str) -> Result<Kind, UnknownKind> {
        [Kind::Official, Kind::TestEbs, Kind::TestInstance]
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| UnknownKind(text.to_string()))
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

/// The other variables every template declares: a var-file may set these too.
pub const OTHER_VARIABLES: [&str; 3] = ["aws_session_token", "launch_size", "ssh_user"];

/// One builder of a template, typed: what a plan shows and a run record starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBuilder {
    /// The builder name, like `us-east-1-1404-hvm`.
    pub name: String,
    pub region: String,
    pub ami_name: String,
    /// `BUCKET/PREFIX` of an instance-store bundle; `None` for EBS builds.
    pub bundle: Option<String>,
    /// The Ubuntu image it starts from.
    pub source_ami: String,
    /// That image's name, when the matrix records it (`base-images --update`).
    pub source_name: Option<String>,
    /// `paravirtual` or `hvm`, as AWS spells it.
    pub virtualization: String,
    /// `ebs` or `instance-store`: what the new image is backed by.
    pub root_device: &'static str,
    /// The Ubuntu release of the row, like `14.04`.
    pub os_version: String,
}

/// What a template builds, without the Packer JSON around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub kind: Kind,
    /// Whether the images are made public once every builder is proven (they are registered
    /// private, whatever this says).
    pub public: bool,
    pub builders: Vec<PlannedBuilder>,
    /// Rows of the kind the matrix disables, with why (a release whose archive no longer
    /// serves, a region Packer cannot build in): the plan says they are not built.
    pub disabled: Vec<(String, String)>,
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

/// Why no template (and no plan) can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A builder name of `--only` that the kind does not build.
    #[error("unknown builder `{name}` for the {kind} template; valid names: {}", valid.join(", "))]
    UnknownBuilder {
        name: String,
        kind: Kind,
        valid: Vec<String>,
    },
    /// A builder name of `--only` whose row the matrix disables.
    #[error("builder `{name}` is disabled in `{path}`: {why}", path = matrix::MATRIX_PATH)]
    DisabledBuilder { name: String, why: String },
    #[error("the {0} template has no builders: no enabled row in `{path}` matches", path = matrix::MATRIX_PATH)]
    NoBuilders(Kind),
    #[error("`{0}` has no `ebs_ami` in `{path}`: an EBS build needs an EBS-backed source AMI", path = matrix::MATRIX_PATH)]
    NoEbsSource(String),
    /// Names AWS would reject (the matrix's own check).
    #[error("{0}")]
    Names(String),
}

impl TemplateError {
    /// What to do, where the message alone does not say (`main` prints it as the `fix:` line).
    pub fn fix(&self) -> Option<String> {
        match self {
            TemplateError::UnknownBuilder { .. } => Some(
                "give `--only` names from that list (comma-separated), or leave `--only` out to build them all".into(),
            ),
            TemplateError::DisabledBuilder { name, .. } => Some(format!(
                "leave `{name}` out of `--only`, or set `\"enabled\": true` on its row in `{}` if it can be built again",
                matrix::MATRIX_PATH
            )),
            _ => None,
        }
    }
}

/// One run as it was asked for: what [`plan`] plans, and what a run record keeps (flattened into
/// `run.json`), so a resume plans exactly the same builders, names and bundle locations.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Spec {
    pub kind: Kind,
    /// Against the local stand-in (`--local`).
    pub local: bool,
    pub version: String,
    pub branch: String,
    /// The commit of this repository the run was started from (the `Commit` tag).
    pub commit: String,
    /// Seconds since the epoch: the S3 bundle prefix and test AMI names. Injectable
    /// (`SOURCE_DATE_EPOCH`) so output is reproducible.
    pub epoch: u64,
    /// Private images even where the kind is public (candidates, `publish --private`).
    #[serde(default)]
    pub private: bool,
    /// The registry this run's AMIs are merged into (publish only).
    pub registry: Option<String>,
    /// Builder names to keep; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<String>,
}

/// Where one run's template puts what it makes: the run's own names, not part of the plan.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub run_id: &'a str,
    /// Where Packer downloads each builder's image report (`BUILDER.json` inside).
    pub report_dir: &'a str,
    /// Set for `--local`: the stand-in endpoints that replace AWS.
    pub local: Option<&'a Local>,
}

impl Target<'_> {
    /// No run yet: the template of a plan that is only checked, never built.
    #[cfg(test)]
    pub const PROBE: Target<'static> = Target {
        run_id: "",
        report_dir: "",
        local: None,
    };
}

/// What the template functions read: the spec and the target together.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    spec: &'a Spec,
    target: Target<'a>,
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
    /// Builders whose provisioning meets a slow mirror, so an interrupt finds them building.
    pub slow_builders: Vec<String>,
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
pub fn ami_name(matrix: &Matrix, spec: &Spec, image: &Image) -> String {
    let official = matrix::fill(&matrix.settings.ami_name, &spec.version, image);
    match spec.kind {
        Kind::Official => official,
        kind => format!("{official} ({kind} {})", spec.epoch),
    }
}

/// `BUCKET/EPOCH-OSVERSION-pv|hvm`: one bucket per version and region, one folder per build.
pub fn bundle_location(matrix: &Matrix, spec: &Spec, image: &Image) -> String {
    let pattern = if spec.kind.is_test() {
        &matrix.settings.test_bucket
    } else {
        &matrix.settings.bucket
    };
    format!(
        "{}/{}-{}-{}",
        matrix::fill(pattern, &spec.version, image),
        spec.epoch,
        image.os_version,
        image.virt_short()
    )
}

/// Where the image report of `ami` is kept for any machine to fetch again: `(bucket, key)`, in
/// the bucket of the row's bundles (one per version and region), keyed by the AMI id.
pub fn report_location(matrix: &Matrix, spec: &Spec, image: &Image, ami: &str) -> (String, String) {
    let pattern = if spec.kind.is_test() {
        &matrix.settings.test_bucket
    } else {
        &matrix.settings.bucket
    };
    (
        matrix::fill(pattern, &spec.version, image),
        format!("image-reports/{ami}.json"),
    )
}

/// What the images of a kind are backed by: `ebs` or `instance-store`.
fn root_device(kind: Kind) -> &'static str {
    match kind {
        Kind::TestEbs => "ebs",
        _ => "instance-store",
    }
}

/// The builders of the template [`generate`] would make, typed. Same errors as [`generate`].
pub fn plan(matrix: &Matrix, spec: &Spec) -> Result<Plan, TemplateError> {
    let chosen = chosen(matrix, spec)?;
    // The same checks as the template (an EBS build needs its source AMI).
    for image in &chosen {
        ebs_source(spec, image)?;
    }
    Ok(Plan {
        kind: spec.kind,
        public: is_public(matrix, spec),
        builders: chosen
            .iter()
            .map(|image| PlannedBuilder {
                name: image.builder_name(),
                region: image.region.clone(),
                ami_name: ami_name(matrix, spec, image),
                bundle: (spec.kind != Kind::TestEbs).then(|| bundle_location(matrix, spec, image)),
                source_ami: match spec.kind {
                    // Checked above: an EBS build has its `ebs_ami`.
                    Kind::TestEbs => image.ebs_ami.clone().unwrap_or_default(),
                    _ => image.instance_store_ami.clone(),
                },
                source_name: image.base_name(root_device(spec.kind)).map(String::from),
                virtualization: image.virtualization.clone(),
                root_device: root_device(spec.kind),
                os_version: image.os_version.clone(),
            })
            .collect(),
        disabled: disabled_rows(matrix, spec.kind),
    })
}

/// The rows of `kind` the matrix disables, by builder name, with their reason.
fn disabled_rows(matrix: &Matrix, kind: Kind) -> Vec<(String, String)> {
    matrix
        .images
        .iter()
        .filter(|image| !image.enabled)
        .filter(|image| kind == Kind::Official || image.region == matrix.settings.test_region)
        .map(|image| {
            let why = image.disabled_because.clone().unwrap_or_default();
            (image.builder_name(), why)
        })
        .collect()
}

/// The rows of the kind that `--only` keeps, checked.
fn chosen<'m>(matrix: &'m Matrix, spec: &Spec) -> Result<Vec<&'m Image>, TemplateError> {
    matrix::check_names(matrix, &spec.version).map_err(TemplateError::Names)?;
    let all = rows(matrix, spec.kind);
    if let Some(unknown) = spec
        .only
        .iter()
        .find(|name| !all.iter().any(|i| &i.builder_name() == *name))
    {
        if let Some((name, why)) = disabled_rows(matrix, spec.kind)
            .into_iter()
            .find(|(name, _)| name == unknown)
        {
            return Err(TemplateError::DisabledBuilder { name, why });
        }
        return Err(TemplateError::UnknownBuilder {
            name: unknown.clone(),
            kind: spec.kind,
            valid: all.iter().map(|i| i.builder_name()).collect(),
        });
    }
    let chosen: Vec<&Image> = all
        .into_iter()
        .filter(|i| spec.only.is_empty() || spec.only.contains(&i.builder_name()))
        .collect();
    if chosen.is_empty() {
        return Err(TemplateError::NoBuilders(spec.kind));
    }
    Ok(chosen)
}

/// Generates the template. Errors name what is wrong (unknown `--only` names, rows without an
/// EBS source AMI, names AWS would reject).
pub fn generate(matrix: &Matrix, spec: &Spec, target: Target) -> Result<Value, TemplateError> {
    let inputs = &Inputs { spec, target };
    let builders = chosen(matrix, spec)?
        .iter()
        .map(|image| builder(matrix, inputs, image))
        .collect::<Result<Vec<_>, _>>()?;

    let mut variables = Map::new();
    for name in CREDENTIAL_VARIABLES {
        variables.insert(name.to_string(), json!(""));
    }
    let [token, launch_size, ssh_user] = OTHER_VARIABLES;
    variables.insert(token.into(), json!("{{env `AWS_SESSION_TOKEN`}}"));
    variables.insert(launch_size.into(), json!(matrix.settings.launch_size));
    variables.insert(ssh_user.into(), json!(matrix.settings.ssh_user));

    Ok(json!({
        "description": format!(
            "{} {} images, version {}, branch {} (generated by `cargo xtask`; do not edit)",
            matrix.settings.project, inputs.spec.kind, inputs.spec.version, inputs.spec.branch
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

/// The EBS-backed image an EBS build starts from: a row without one cannot be built as EBS.
fn ebs_source<'i>(spec: &Spec, image: &'i Image) -> Result<&'i str, TemplateError> {
    match (&image.ebs_ami, spec.kind) {
        (Some(source), _) => Ok(source),
        (None, Kind::TestEbs) => Err(TemplateError::NoEbsSource(image.builder_name())),
        (None, _) => Ok(""),
    }
}

fn builder(matrix: &Matrix, inputs: &Inputs, image: &Image) -> Result<Value, TemplateError> {
    let name = image.builder_name();
    let tags = tags(matrix, inputs);
    let mut b = json!({
        "name": name,
        "access_key": user("aws_access_key"),
        "secret_key": user("aws_secret_key"),
        "region": image.region,
        "instance_type": user("launch_size"),
        "token": user("aws_session_token"),
        "ssh_username": user("ssh_user"),
        "ami_name": ami_name(matrix, inputs.spec, image),
        "ami_description": matrix.settings.ami_description,
        // Registered private, always: an official image is made public only when every builder
        // of its run has passed its checks (`cmd::build`), never by Packer.
        "ami_groups": json!([]),
        "ami_virtualization_type": image.virtualization,
        "ena_support": false,
        "sriov_support": false,
        "tags": tags,
        "run_tags": tags,
    });
    let fields = b.as_object_mut().expect("builder is an object");
    if inputs.spec.kind == Kind::TestEbs {
        let source = ebs_source(inputs.spec, image)?;
        fields.insert("type".into(), json!("amazon-ebs"));
        fields.insert("source_ami".into(), json!(source));
        fields.insert("snapshot_tags".into(), tags.clone());
        // Volumes of the build instance: tagged so a killed build's left-overs can be found.
        fields.insert("run_volume_tags".into(), tags);
    } else {
        let bundle = bundle_location(matrix, inputs.spec, image);
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
    if let Some(local) = inputs.target.local {
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
        if inputs.spec.kind != Kind::TestEbs {
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
        "Version": inputs.spec.version,
        "Branch": inputs.spec.branch,
        "Commit": inputs.spec.commit,
        "RunId": inputs.target.run_id,
        "Kind": inputs.spec.kind.as_str(),
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
    if let Some(local) = inputs.target.local {
        // The stand-in's paths lie under the repository, which may be in a folder with a space:
        // every path (and every placeholder Packer fills with one) is quoted for the shell.
        let name = image.builder_name();
        let (vol, upload, record) = (
            shell_quote(&local.bundle_vol_script),
            shell_quote(&local.bundle_upload_script),
            shell_quote(&local.record_file),
        );
        return (
            format!(
                "sh {vol} {record} {name} -k '{{{{.KeyPath}}}}' -u {{{{.AccountId}}}} \
                 -c '{{{{.CertPath}}}}' -r {{{{.Architecture}}}} -e '{{{{.PrivatePath}}}}'/* \
                 -d '{{{{.Destination}}}}' -p {{{{.Prefix}}}} --batch --no-filter{partition}"
            ),
            format!(
                "sh {upload} {record} {} {name} -b {{{{.BucketName}}}} -m '{{{{.ManifestPath}}}}' \
                 -a {{{{.AccessKey}}}} -s {{{{.SecretKey}}}} {TOKEN}-d '{{{{.BundleDirectory}}}}' \
                 --batch --region {{{{.Region}}}} --retry",
                local.ec2_endpoint
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

/// Whether the images of this run are made public once proven (launch permission `all`): official builds
/// when `build/images.json` says so, unless the caller asked for private ones.
pub fn is_public(matrix: &Matrix, spec: &Spec) -> bool {
    spec.kind == Kind::Official && matrix.settings.public && !spec.private
}

/// `text` as one word for `sh`: single-quoted, each `'` in it closed, escaped and reopened.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// One builder's folder on the stand-in instance: uploaded scripts, x509 files and bundles of
/// parallel builders must not meet.
pub fn builder_work_dir(local: &Local, builder: &str) -> String {
    format!("{}/{builder}", local.work_dir)
}

/// The provisioning (`build/provision.sh`, the same file on AWS and on the stand-in), then the
/// download of the image report it wrote.
fn provisioners(matrix: &Matrix, inputs: &Inputs, builders: &[Value]) -> Value {
    let Some(local) = inputs.target.local else {
        return json!([
            {
                "type": "shell",
                "script": "build/provision.sh",
                "environment_vars": environment(matrix, inputs, &inputs.spec.version),
                "execute_command": "chmod +x {{ .Path }}; {{ .Vars }} sudo -E -n bash '{{ .Path }}'",
            },
            report_download(inputs, report::REMOTE_PATH.to_string()),
        ]);
    };
    Value::Array(local_provisioners(matrix, inputs, local, builders))
}

/// What `build/provision.sh` is told: which ComboAMI to bake, which EC2 tools to install.
fn environment(matrix: &Matrix, inputs: &Inputs, version: &str) -> Vec<String> {
    vec![
        format!("COMBOAMI_VERSION={version}"),
        format!("COMBOAMI_BRANCH={}", inputs.spec.branch),
        format!("COMBOAMI_COMMIT={}", inputs.spec.commit),
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
}

/// Packer downloads the image report from `source` into the run's report folder.
fn report_download(inputs: &Inputs, source: String) -> Value {
    json!({
        "type": "file",
        "direction": "download",
        "source": source,
        "destination": format!("{}/{{{{build_name}}}}.json", inputs.target.report_dir),
    })
}

/// The provisioners of a `--local` build, run against the stand-in "instance".
fn local_provisioners(
    matrix: &Matrix,
    inputs: &Inputs,
    local: &Local,
    builders: &[Value],
) -> Vec<Value> {
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
        let mut environment = environment(matrix, inputs, version);
        environment.extend([
            format!("IMAGE_ROOT={root}"),
            format!("XTASK_STANDIN_COMMANDS={root}.commands"),
            format!("XTASK_STANDIN_COMBOAMI={}", local.comboami_fixture),
            format!("XTASK_STANDIN_DOWNLOADS={}", local.downloads),
        ]);
        for (variable, builders) in [
            ("XTASK_STANDIN_FAIL", &local.fail_builders),
            ("XTASK_STANDIN_SLOW", &local.slow_builders),
        ] {
            if !builders.is_empty() {
                environment.push(format!("{variable}={}", builders.join(",")));
            }
        }
        json!({
            "type": "shell",
            "script": "build/provision.sh",
            "environment_vars": environment,
            "override": overrides,
            // The real script on this machine: without its stand-ins it would run the real
            // apt-get and friends here, so it does not start without them.
            "execute_command": format!(
                "chmod +x '{{{{ .Path }}}}'; [ -x {bin}/apt-get ] || {{ echo 'the stand-in commands \
                 are missing from '{bin} >&2; exit 1; }}; export XTASK_STANDIN_PATH=\"$PATH\" \
                 PATH={bin}:\"$PATH\"; {{{{ .Vars }}}} sudo -E -n bash '{{{{ .Path }}}}'",
                bin = shell_quote(&local.standin_bin)
            ),
        })
    };
    let mut provisioners = vec![local_provisioner(&inputs.spec.version)];
    if !local.wrong_version_builders.is_empty() {
        // A rehearsal of a wrong image report: these builders bake another version.
        provisioners[0]["except"] = json!(local.wrong_version_builders);
        let mut wrong = local_provisioner(&wrong_version(&inputs.spec.version));
        wrong["only"] = json!(local.wrong_version_builders);
        provisioners.push(wrong);
    }
    provisioners.push(report_download(
        inputs,
        format!("{root}{}", report::REMOTE_PATH),
    ));
    provisioners
}

/// The template as written to disk and stdout: pretty, sorted keys, trailing newline.
pub fn render(template: &Value) -> String {
    let mut text = serde_json::to_string_pretty(template).expect("a JSON value always serializes");
    text.push('\n');
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn matrix() -> Matrix {
        Matrix::parse(include_str!("../../../build/images.json")).unwrap()
    }

    /// A spec of `kind` for 2.6.3 on 2.6, not local: what template and preflight tests build.
    pub(crate) fn spec(kind: Kind) -> Spec {
        Spec {
            kind,
            local: false,
            version: "2.6.3".into(),
            branch: "2.6".into(),
            commit: "0123abc".into(),
            epoch: 1_700_000_000,
            private: false,
            registry: None,
            only: Vec::new(),
        }
    }

    const TARGET: Target<'static> = Target {
        run_id: "test",
        report_dir: "build/runs/test/reports",
        local: None,
    };

    #[test]
    fn official_has_one_instance_builder_per_enabled_row_registered_private() {
        let t = generate(&matrix(), &spec(Kind::Official), TARGET).unwrap();
        let builders = t["builders"].as_array().unwrap();
        assert_eq!(builders.len(), 32);
        let b = builders
            .iter()
            .find(|b| b["name"] == "us-east-1-1404-hvm")
            .unwrap();
        assert_eq!(b["type"], "amazon-instance");
        // Made public by the tool once every builder is proven, never by Packer.
        assert_eq!(b["ami_groups"], json!([]));
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
        let official = generate(&matrix(), &spec(Kind::Official), TARGET).unwrap();
        let official_names: Vec<&Value> = official["builders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| &b["ami_name"])
            .collect();
        for kind in [Kind::TestEbs, Kind::TestInstance] {
            let t = generate(&matrix(), &spec(kind), TARGET).unwrap();
            let builders = t["builders"].as_array().unwrap();
            assert_eq!(builders.len(), 4, "{kind}");
            for b in builders {
                assert_eq!(b["ami_groups"], json!([]));
                assert!(!official_names.contains(&&b["ami_name"]));
                assert!(b["name"].as_str().unwrap().starts_with("us-east-1-"));
            }
        }
        let ebs = generate(&matrix(), &spec(Kind::TestEbs), TARGET).unwrap();
        assert_eq!(ebs["builders"][0]["type"], "amazon-ebs");
        assert!(ebs["builders"][0]["snapshot_tags"].is_object());
    }

    #[test]
    fn unknown_only_name_lists_valid_ones() {
        let only = vec!["us-east-1-1404".to_string()];
        let mut i = spec(Kind::TestEbs);
        i.only = only;
        let err = generate(&matrix(), &i, TARGET).unwrap_err().to_string();
        assert!(err.contains("unknown builder `us-east-1-1404`"), "{err}");
        assert!(err.contains("us-east-1-1404-hvm"), "{err}");
        // A disabled row is named as disabled, with why and the fix.
        let mut official = spec(Kind::Official);
        official.only = vec!["eu-central-1-1404-hvm".to_string()];
        let err = generate(&matrix(), &official, TARGET).unwrap_err();
        assert!(
            err.to_string().starts_with("builder `eu-central-1-1404-hvm` is disabled in `build/images.json`: the Packer release"),
            "{err}"
        );
        assert!(err
            .fix()
            .unwrap()
            .contains("leave `eu-central-1-1404-hvm` out of `--only`"));
    }

    #[test]
    fn the_typed_plan_matches_the_template() {
        for kind in [Kind::Official, Kind::TestEbs, Kind::TestInstance] {
            let t = generate(&matrix(), &spec(kind), TARGET).unwrap();
            let p = plan(&matrix(), &spec(kind)).unwrap();
            let builders = t["builders"].as_array().unwrap();
            assert_eq!(builders.len(), p.builders.len());
            for (b, planned) in builders.iter().zip(&p.builders) {
                assert_eq!(b["ami_groups"], json!([]));
                assert_eq!(b["name"], planned.name.as_str());
                assert_eq!(b["region"], planned.region.as_str());
                assert_eq!(b["ami_name"], planned.ami_name.as_str());
                assert_eq!(b["s3_bucket"].as_str(), planned.bundle.as_deref());
            }
        }
    }

    #[test]
    fn an_image_report_is_kept_in_its_rows_bucket_keyed_by_the_ami() {
        let m = matrix();
        let row = m
            .images
            .iter()
            .find(|i| i.builder_name() == "eu-west-1-1404-hvm")
            .unwrap();
        let official = report_location(&m, &spec(Kind::Official), row, "ami-1");
        assert_eq!(
            official,
            (
                "comboami-2.6.3-eu-west-1".to_string(),
                "image-reports/ami-1.json".to_string()
            )
        );
        // Beside the bundles of the same bucket as the run's: a test build's own bucket.
        let (bucket, _) = report_location(&m, &spec(Kind::TestEbs), row, "ami-1");
        assert_eq!(bucket, "comboami-test-2.6.3-eu-west-1");
        let bundle = bundle_location(&m, &spec(Kind::Official), row);
        assert!(bundle.starts_with(&format!("{}/", official.0)), "{bundle}");
    }

    /// The stand-in's side of a local build, with one failing and one wrong-version builder.
    fn local() -> Local {
        Local {
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
            slow_builders: Vec::new(),
        }
    }

    /// All builders of a local publish share one stand-in instance: Packer names its uploaded
    /// scripts at random, so a folder shared by two builders lost one in a few percent of full
    /// publishes. Each builder, in every shell provisioner, has a folder of its own.
    #[test]
    fn every_local_builder_uploads_into_a_remote_folder_of_its_own() {
        let local = local();
        let target = Target {
            local: Some(&local),
            ..TARGET
        };
        let t = generate(&matrix(), &spec(Kind::Official), target).unwrap();
        let names: Vec<&str> = t["builders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 32);
        for shell in t["provisioners"].as_array().unwrap() {
            if shell["type"] != "shell" {
                continue;
            }
            let mut folders: Vec<&str> = names
                .iter()
                .map(|name| {
                    shell["override"][*name]["remote_folder"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name} has no remote folder: {shell}"))
                })
                .collect();
            folders.sort();
            folders.dedup();
            assert_eq!(folders.len(), names.len(), "a folder is shared: {shell}");
        }
    }

    #[test]
    fn local_builds_run_the_real_provisioning_and_a_wrong_version_only_where_asked() {
        let local = local();
        let target = Target {
            local: Some(&local),
            ..TARGET
        };
        let t = generate(&matrix(), &spec(Kind::TestEbs), target).unwrap();
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
        let mut i = spec(Kind::Official);
        i.private = true;
        let t = generate(&matrix(), &i, TARGET).unwrap();
        for b in t["builders"].as_array().unwrap() {
            assert_eq!(b["ami_groups"], json!([]));
        }
        assert!(!plan(&matrix(), &i).unwrap().public);
        assert!(plan(&matrix(), &spec(Kind::Official)).unwrap().public);
    }

    #[test]
    fn generation_is_deterministic() {
        let a = render(&generate(&matrix(), &spec(Kind::Official), TARGET).unwrap());
        let b = render(&generate(&matrix(), &spec(Kind::Official), TARGET).unwrap());
        assert_eq!(a, b);
    }

    #[test]
    fn shell_quote_keeps_spaces_and_quotes_in_one_word() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
