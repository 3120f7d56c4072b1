#!/usr/bin/env bash
# Makes a ComboAMI 2.6 image of the launched Ubuntu instance (12.04 or 14.04). Packer runs it as
# root (`sudo -E`) with COMBOAMI_VERSION, COMBOAMI_BRANCH, EC2_AMI_TOOLS_VERSION and
# EC2_API_TOOLS_VERSION from the template, and PACKER_BUILD_NAME, the builder name
# (`REGION-OSVERSION-pv|hvm`). The steps follow the 2.6 images; build/README.md says where and
# why they differ.
#
# IMAGE_ROOT is where the image's `/` is: empty on a real instance. `cargo xtask ... --local`
# runs this same file on the stand-in instance with IMAGE_ROOT set to a simulated image root
# and the system commands (apt-get, git, curl, ...) replaced by recording stand-ins on PATH.
# So every path below starts with "$root", and everything the system does goes through PATH.
#
# The last step writes the image report, /tmp/comboami-image-report.json, which Packer
# downloads and `cargo xtask` checks before it accepts the image.
set -euo pipefail
set -x

: "${COMBOAMI_VERSION:?set by the Packer template}"
: "${COMBOAMI_BRANCH:?set by the Packer template}"
: "${EC2_AMI_TOOLS_VERSION:?set by the Packer template}"
: "${EC2_API_TOOLS_VERSION:?set by the Packer template}"
: "${PACKER_BUILD_NAME:?set by Packer}"

root=${IMAGE_ROOT:-}
readonly root
comboami=/home/ubuntu/datastax_ami
boot_hook=/etc/init.d/start-ami-script.sh
report=/tmp/comboami-image-report.json

# 1. What runs here.
os_release=$(lsb_release -sr)
os_codename=$(lsb_release -sc)
case "$PACKER_BUILD_NAME" in
    *-hvm) virtualization=hvm ;;
    *-pv) virtualization=paravirtual ;;
    *)
        echo "builder name \`$PACKER_BUILD_NAME\` ends in neither -hvm nor -pv" >&2
        exit 1
        ;;
esac

# 2. cloud-init rewrites the apt sources after SSH is already up: apt must wait for it.
waited=0
until [ -e "$root/var/lib/cloud/instance/boot-finished" ]; do
    if [ "$waited" -ge 600 ]; then
        echo "cloud-init did not finish within 10 minutes" >&2
        exit 1
    fi
    sleep 2
    waited=$((waited + 2))
done

# 3. apt never asks; a changed configuration file takes the package's version.
export DEBIAN_FRONTEND=noninteractive
apt_get() {
    apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confnew "$@"
}
apt_get update
apt_get dist-upgrade

# 4. What ComboAMI's boot scripts run (RAID0 over the ephemeral disks, XFS, the clock, JNA for
# Cassandra), then the convenience tools users expect on the image.
apt_get install --no-install-recommends mdadm
apt_get install git xfsprogs ntp software-properties-common
apt_get install libjna-java
apt_get install --fix-missing htop sysstat iftop dstat subversion maven2 ant make gcc binutils \
    emacs23-nox pssh pbzip2 zip unzip s3cmd curl tree python-pip ethtool ruby openssl liblzo2-dev

# 5. HVM images boot through legacy grub (menu.lst), not grub2, and the EFI partition is not
# part of the bundled root filesystem.
if [ "$virtualization" = hvm ]; then
    apt_get install grub
    sed -i 's/ro console=hvc0/ro console=ttyS0/' "$root/boot/grub/menu.lst"
    sed -i '/LABEL=UEFI/d' "$root/etc/fstab"
fi

# 6. Java 7. The 2.6 images had Oracle Java 7 from the webupd8team PPA; that PPA and Oracle's
# Java 7 downloads are gone, so an image built today could not have it. OpenJDK 7 is in the
# Ubuntu archive of both 12.04 and 14.04, and Cassandra and DSE of the 2.6 era support it.
java_home=/usr/lib/jvm/java-7-openjdk-amd64
apt_get install openjdk-7-jdk
# It fails on a server for alternatives it has nothing to set (the browser plugin); what
# matters is checked below: `java` on PATH is this JDK's, so JAVA_HOME says what runs.
update-java-alternatives -s java-1.7.0-openjdk-amd64 || true
if [ ! -x "$root$java_home/bin/java" ]; then
    echo "openjdk-7-jdk did not install $java_home/bin/java" >&2
    exit 1
fi
default_java=$(readlink -f "$root/usr/bin/java" || true)
case "$default_java" in
    "$(readlink -f "$root$java_home")"/*) ;;
    *)
        echo "the default \`java\` is \`${default_java:-none}\`, not OpenJDK 7's in $java_home" >&2
        exit 1
        ;;
esac

# 7. ComboAMI, at the branch the image pulls its updates from. 2.6 keeps its version in
# VERSION at the top of the repository. (`cd`, not `git -C`: 12.04's git is 1.7.9.)
rm -rf "$root$comboami"
git clone https://github.com/riptano/ComboAMI.git "$root$comboami"
(cd "$root$comboami" && git checkout "$COMBOAMI_BRANCH")
printf '%s\n' "$COMBOAMI_VERSION" >"$root$comboami/VERSION"
comboami_commit=$(cd "$root$comboami" && git rev-parse HEAD)
chown -R ubuntu:ubuntu "$root$comboami"

# 8. Logging in shows the cluster's state; every shell knows where Java and Hadoop are.
profile_exports="export JAVA_HOME=$java_home
export HADOOP_HOME=/usr/share/dse/hadoop"
ubuntu_profile="$root/home/ubuntu/.profile"
{
    echo "python datastax_ami/ds4_motd.py"
    echo "$profile_exports"
    if [ -f "$ubuntu_profile" ]; then cat "$ubuntu_profile"; fi
} >"$ubuntu_profile.new"
mv "$ubuntu_profile.new" "$ubuntu_profile"
chmod 644 "$ubuntu_profile"
chown ubuntu:ubuntu "$ubuntu_profile"
echo "$profile_exports" >>"$root/root/.profile"
chmod 644 "$root/root/.profile"
chown root:root "$root/root/.profile"

# 9. Cassandra maps many files. (The 2.6 script meant to write this file but never did.)
mkdir -p "$root/etc/sysctl.d"
echo "vm.max_map_count = 131072" >"$root/etc/sysctl.d/99-cassandra.conf"

# 10. Cassandra's limits. ComboAMI's configure step moves this file aside, so it must exist.
mkdir -p "$root/etc/security/limits.d"
limits="$root/etc/security/limits.d/cassandra.conf"
: >"$limits"
for user in cassandra root; do
    printf '%s - %s %s\n' \
        "$user" memlock unlimited \
        "$user" nofile 100000 \
        "$user" nproc 32768 \
        "$user" as unlimited >>"$limits"
done
chmod 644 "$limits"
chown root:root "$limits"

# 11. The boot hook: without it the image configures nothing at boot.
mkdir -p "$root/etc/init.d"
cat >"$root$boot_hook" <<EOF
#!/bin/sh
### BEGIN INIT INFO
# Provides:          start-ami-script
# Required-Start:    \$remote_fs \$syslog
# Required-Stop:     \$remote_fs \$syslog
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: ComboAMI: configure this node's DataStax cluster at boot
### END INIT INFO
case "\${1:-start}" in
    start) ;;
    *) exit 0 ;;
esac
export JAVA_HOME=$java_home
echo 1 > /proc/sys/vm/overcommit_memory
echo "===== \$(date) =====" >> $comboami/ami.log
cd $comboami || exit 1
python ds0_updater.py
EOF
chmod 755 "$root$boot_hook"
chown root:root "$root$boot_hook"
update-rc.d -f start-ami-script.sh start 99 2 3 4 5 .

# 12. No build-time identity ships: the builder's SSH keys, the host keys (every type: they are
# made again at first boot), /tmp, shell history, and cloud-init's state of this instance, so
# cloud-init runs again on the first boot of the image.
rm -rf "$root"/home/ubuntu/.ssh/* "$root"/root/.ssh/*
rm -f "$root"/etc/ssh/ssh_host_*
rm -rf "$root"/tmp/* "$root"/tmp/.[!.]*
rm -f "$root/root/.bash_history" "$root/home/ubuntu/.bash_history"
rm -rf "$root/var/lib/cloud/instance" "$root"/var/lib/cloud/instances/*

# 13. The EC2 AMI and API tools that the template's bundle commands run, after the clean-up
# (which would delete them): /tmp/ec2/{bin,etc,lib}.
apt_get install gdisk kpartx
downloads=$(mktemp -d)
ec2="$root/tmp/ec2"
mkdir -p "$ec2/bin" "$ec2/etc" "$ec2/lib"
for tools in "ec2-ami-tools-$EC2_AMI_TOOLS_VERSION" "ec2-api-tools-$EC2_API_TOOLS_VERSION"; do
    curl -fsSL -o "$downloads/$tools.zip" "https://s3.amazonaws.com/ec2-downloads/$tools.zip"
    unzip -q -o "$downloads/$tools.zip" -d "$downloads"
    for part in bin etc lib; do
        if [ -d "$downloads/$tools/$part" ]; then
            cp -R "$downloads/$tools/$part/." "$ec2/$part/"
        fi
    done
done
rm -rf "$downloads"

# 14. The image report, what `cargo xtask` checks before it accepts the image: what was
# really baked, read back from the image.
apt_get clean
baked_version=$(cat "$root$comboami/VERSION")
baked_branch=$(cd "$root$comboami" && git rev-parse --abbrev-ref HEAD)
hook=""
if [ -x "$root$boot_hook" ] && grep -q 'python ds0_updater.py' "$root$boot_hook"; then
    hook=$boot_hook
fi
cat >"$root$report" <<EOF
{
    "builder": "$PACKER_BUILD_NAME",
    "version": "$baked_version",
    "branch": "$baked_branch",
    "comboami_commit": "$comboami_commit",
    "virtualization": "$virtualization",
    "boot_hook": "$hook",
    "java_home": "$java_home",
    "os_release": "$os_release",
    "os_codename": "$os_codename"
}
EOF
set +x
echo "ComboAMI $baked_version ($baked_branch, $comboami_commit) provisioned on Ubuntu $os_release for $PACKER_BUILD_NAME"
