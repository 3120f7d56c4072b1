//! The simulated image root of a local build: what a fresh Ubuntu 12.04 or 14.04 cloud image has
//! that `build/provision.sh` touches, so the real script runs against it on the stand-in
//! instance. Pure: the caller writes the entries below `build/runs/<run>/image-root/<builder>/`.

use crate::pure::matrix::Image;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file with its contents and mode.
    File(&'static str, String, u32),
    Dir(&'static str),
    /// A relative symbolic link (absolute ones would leave the simulated root).
    Symlink(&'static str, &'static str),
}

/// The seed of one builder's root.
pub fn seed(image: &Image) -> Vec<Entry> {
    let (release, codename, kernel) = match image.os_version.as_str() {
        "1204" => ("12.04", "precise", "3.2.0-86-virtual"),
        _ => ("14.04", "trusty", "3.13.0-55-generic"),
    };
    let mut fstab = String::from("LABEL=cloudimg-rootfs\t/\t ext4\tdefaults\t0 0\n");
    if image.os_version != "1204" {
        // 14.04 cloud images list their EFI partition, which a bundled root does not have.
        fstab.push_str("LABEL=UEFI\t/boot/efi\tvfat\tdefaults\t0 0\n");
    }
    // pv-grub and the legacy grub of HVM images read the same menu.lst.
    let menu = format!(
        "default\t\t0\ntimeout\t\t0\n\ntitle\t\tUbuntu {release} LTS, kernel {kernel}\n\
         root\t\t(hd0)\nkernel\t\t/boot/vmlinuz-{kernel} root=LABEL=cloudimg-rootfs ro console=hvc0\n\
         initrd\t\t/boot/initrd.img-{kernel}\n"
    );
    let profile = "# ~/.profile: executed by the command interpreter for login shells.\n\
                   if [ -n \"$BASH_VERSION\" ] && [ -f \"$HOME/.bashrc\" ]; then\n    \
                   . \"$HOME/.bashrc\"\nfi\n";
    let mut entries = vec![
        Entry::File(
            "etc/lsb-release",
            format!(
                "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE={release}\nDISTRIB_CODENAME={codename}\n\
                 DISTRIB_DESCRIPTION=\"Ubuntu {release} LTS\"\n"
            ),
            0o644,
        ),
        Entry::File("etc/fstab", fstab, 0o644),
        Entry::File("boot/grub/menu.lst", menu, 0o644),
        Entry::Dir("etc/init.d"),
        Entry::Dir("etc/security/limits.d"),
        Entry::Dir("etc/sysctl.d"),
        Entry::File(
            "var/lib/cloud/instances/i-0standin0000000/boot-finished",
            format!("{kernel} cloud-init finished\n"),
            0o644,
        ),
        Entry::File(
            "var/lib/cloud/instances/i-0standin0000000/user-data.txt",
            String::new(),
            0o600,
        ),
        Entry::Symlink("var/lib/cloud/instance", "instances/i-0standin0000000"),
        Entry::File(
            "home/ubuntu/.ssh/authorized_keys",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC0standin build-key\n".into(),
            0o600,
        ),
        Entry::File("home/ubuntu/.profile", profile.into(), 0o644),
        Entry::File("home/ubuntu/.bash_history", "sudo -i\n".into(), 0o600),
        Entry::File("root/.profile", profile.into(), 0o644),
        Entry::File("root/.bash_history", "apt-get update\n".into(), 0o600),
        Entry::File(
            "tmp/cloud-init-leftover.txt",
            "left by the boot\n".into(),
            0o644,
        ),
    ];
    entries.extend(system(image, release, codename));
    let mut key_types = vec!["rsa", "dsa", "ecdsa"];
    if image.os_version != "1204" {
        key_types.push("ed25519");
    }
    for key in key_types {
        let (private, public) = host_key_paths(key);
        entries.push(Entry::File(
            private,
            format!("stand-in {key} host key\n"),
            0o600,
        ));
        entries.push(Entry::File(
            public,
            format!("ssh-{key} AAAA stand-in\n"),
            0o644,
        ));
    }
    entries
}

/// What the stand-in commands answer from: users and groups (`chown`), the apt sources
/// (`apt-get update`) and the installed packages (`dpkg-query`).
fn system(image: &Image, release: &str, codename: &str) -> Vec<Entry> {
    // The upstream images use the EC2 mirror of their region, which follows the main archive.
    let sources = format!(
        "deb http://{region}.ec2.archive.ubuntu.com/ubuntu/ {codename} main restricted universe\n\
         deb http://{region}.ec2.archive.ubuntu.com/ubuntu/ {codename}-updates main restricted universe\n\
         deb http://security.ubuntu.com/ubuntu {codename}-security main restricted universe\n",
        region = image.region
    );
    vec![
        Entry::File("etc/apt/sources.list", sources, 0o644),
        Entry::File(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\n\
             ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n"
                .into(),
            0o644,
        ),
        Entry::File(
            "etc/group",
            "root:x:0:\nadm:x:4:ubuntu\nubuntu:x:1000:\n".into(),
            0o644,
        ),
        // What the stand-in `dpkg-query` answers and its `apt-get` adds to (a real image has
        // var/lib/dpkg/status): the packages of the upstream image that the provisioning uses.
        Entry::File(
            "var/lib/dpkg/standin-packages",
            [
                "lsb-release",
                "openssh-server",
                "cloud-init",
                "python2.7",
                "sudo",
            ]
            .map(|p| format!("{p} {release}-standin0\n"))
            .concat(),
            0o644,
        ),
    ]
}

fn host_key_paths(key: &str) -> (&'static str, &'static str) {
    match key {
        "rsa" => ("etc/ssh/ssh_host_rsa_key", "etc/ssh/ssh_host_rsa_key.pub"),
        "dsa" => ("etc/ssh/ssh_host_dsa_key", "etc/ssh/ssh_host_dsa_key.pub"),
        "ecdsa" => (
            "etc/ssh/ssh_host_ecdsa_key",
            "etc/ssh/ssh_host_ecdsa_key.pub",
        ),
        _ => (
            "etc/ssh/ssh_host_ed25519_key",
            "etc/ssh/ssh_host_ed25519_key.pub",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::matrix::Matrix;

    fn image(name: &str) -> Image {
        let matrix = Matrix::parse(include_str!("../../../build/images.json")).unwrap();
        matrix
            .images
            .into_iter()
            .find(|i| i.builder_name() == name)
            .unwrap()
    }

    fn file<'a>(entries: &'a [Entry], path: &str) -> &'a str {
        entries
            .iter()
            .find_map(|e| match e {
                Entry::File(p, text, _) if *p == path => Some(text.as_str()),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn a_1404_root_has_what_the_provisioning_changes() {
        let entries = seed(&image("us-east-1-1404-hvm"));
        assert!(file(&entries, "boot/grub/menu.lst").contains("ro console=hvc0"));
        assert!(file(&entries, "etc/fstab").contains("LABEL=UEFI"));
        assert!(file(&entries, "etc/lsb-release").contains("DISTRIB_CODENAME=trusty"));
        assert!(!file(&entries, "etc/ssh/ssh_host_rsa_key").is_empty());
        assert!(entries.contains(&Entry::Symlink(
            "var/lib/cloud/instance",
            "instances/i-0standin0000000"
        )));
    }

    #[test]
    fn a_1204_root_is_precise_without_an_efi_partition() {
        let entries = seed(&image("us-east-1-1204-pv"));
        assert!(!file(&entries, "etc/fstab").contains("LABEL=UEFI"));
        assert!(file(&entries, "etc/lsb-release").contains("DISTRIB_RELEASE=12.04"));
        assert!(file(&entries, "etc/apt/sources.list")
            .contains("deb http://us-east-1.ec2.archive.ubuntu.com/ubuntu/ precise main"));
        assert!(file(&entries, "etc/passwd").contains("\nubuntu:x:1000:"));
    }
}
