#!/usr/bin/env bash
# Makes a ComboAMI 2.6 image of the launched Ubuntu instance (12.04 or 14.04). Packer runs it as
# root (`sudo -E`) with COMBOAMI_VERSION, COMBOAMI_BRANCH, COMBOAMI_COMMIT (the commit to bake,
# which the branch must contain), COMBOAMI_ARCHIVES (`1204=URL ...`: the Ubuntu archive of each
# release that needs another one than its image's), EC2_AMI_TOOLS_VERSION and
# EC2_API_TOOLS_VERSION from the template, and PACKER_BUILD_NAME, the builder name
# (`REGION-OSVERSION-pv|hvm`). The steps follow the 2.6 images; build/README.md says where and
# why they differ.
#
# IMAGE_ROOT is where the image's `/` is: empty on a real instance. `cargo xtask ... --local`
# runs this same file on the stand-in instance with IMAGE_ROOT set to a simulated image root
# and the system commands (apt-get, git, curl, ...) replaced by recording stand-ins on PATH.
# So every path below starts with "$root", and everything the system does goes through PATH.
#
# The last step measures the image and writes what it found, /tmp/comboami-image-report.json,
# which Packer downloads and `cargo xtask` compares with `build/expect.json` before it accepts
# the image. The report never repeats this script's inputs: it reads the image.
set -euo pipefail
set -x

: "${COMBOAMI_VERSION:?set by the Packer template}"
: "${COMBOAMI_BRANCH:?set by the Packer template}"
: "${COMBOAMI_COMMIT:?set by the Packer template}"
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

# 3. The archive this release is served from. Releases that left the main archive (12.04 in 2021,
# and the EC2 mirrors follow the main archive) are on old-releases; `settings.archives` in
# build/images.json says which. The image keeps it: cloud-init is told not to rewrite the sources
# at its first boot, since ComboAMI's boot scripts run apt-get too.
archive=""
for setting in ${COMBOAMI_ARCHIVES:-}; do
    case "$setting" in
        "${os_release/./}="*) archive=${setting#*=} ;;
    esac
done
if [ -n "$archive" ]; then
    # Basic regular expressions: 12.04's sed (4.2.1) does not document -E.
    sed -i "s#^\(deb\(-src\)\{0,1\}[[:space:]]\{1,\}\)[^[:space:]]\{1,\}#\1$archive#" \
        "$root/etc/apt/sources.list"
    mkdir -p "$root/etc/cloud/cloud.cfg.d"
    echo "apt_preserve_sources_list: true" >"$root/etc/cloud/cloud.cfg.d/99-comboami-archive.cfg"
fi

# apt never asks; a changed configuration file takes the package's version.
export DEBIAN_FRONTEND=noninteractive
# A mirror's passing hiccup is retried, not a failed builder (dozens of instances per build).
apt_get() {
    apt-get -y -q -o Acquire::Retries=3 -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confnew "$@"
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

# 7. ComboAMI: exactly the commit being built, on the branch the image pulls its updates from.
# Nothing is written into the checkout: the version the image carries is what its own
# ds0_utils.py says. (`cd`, not `git -C`, and no `merge-base --is-ancestor`: 12.04's git is 1.7.9.)
for try in 1 2 3; do
    rm -rf "$root$comboami"
    if git clone https://github.com/riptano/ComboAMI.git "$root$comboami"; then break; fi
    if [ "$try" = 3 ]; then exit 1; fi
    sleep $((try * 10))
done
(
    cd "$root$comboami"
    git checkout "$COMBOAMI_BRANCH"
    wanted=$(git rev-parse --verify -q "$COMBOAMI_COMMIT^{commit}" || true)
    if [ -z "$wanted" ] || [ "$(git merge-base "$wanted" HEAD)" != "$wanted" ]; then
        echo "branch \`$COMBOAMI_BRANCH\` of ComboAMI does not contain commit \`$COMBOAMI_COMMIT\`;" \
            "fix: push that commit to the branch, then build again" >&2
        exit 1
    fi
    git reset -q --hard "$wanted"
)
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
    curl -fsSL --retry 3 -o "$downloads/$tools.zip" "https://s3.amazonaws.com/ec2-downloads/$tools.zip"
    unzip -q -o "$downloads/$tools.zip" -d "$downloads"
    # The layout the bundle commands need: a changed zip fails here, never installs nothing.
    parts="bin lib"
    case "$tools" in ec2-ami-tools-*) parts="bin etc lib" ;; esac
    for part in $parts; do
        if [ ! -d "$downloads/$tools/$part" ]; then
            echo "$tools.zip has no \`$tools/$part/\`: its layout changed; fix: update step 13" >&2
            exit 1
        fi
        cp -R "$downloads/$tools/$part/." "$ec2/$part/"
    done
done
rm -rf "$downloads"


# 14. The image report: what `cargo xtask` compares with build/expect.json before it accepts the
# image. Every value is measured in the finished image (the files themselves, dpkg-query, git,
# `java -version`, the checkout's own ds0_utils.py, /etc/lsb-release), never taken from this
# script's inputs. Python 2 and 3 alike: 12.04's and 14.04's `python` is 2.7.
apt_get clean
export IMAGE_ROOT="$root" COMBOAMI_CHECKOUT="$comboami" IMAGE_REPORT="$root$report"
python -B - <<'EOF'
import glob, json, os, re, shutil, subprocess, sys, tempfile

root = os.environ["IMAGE_ROOT"]
checkout = os.environ["COMBOAMI_CHECKOUT"]
# Where the things build/expect.json speaks of live; a path it names that is not measured here
# fails the comparison, so this list cannot silently fall behind.
PLACES = [
    "/etc/init.d/start-ami-script.sh", "/etc/rc?.d/*start-ami-script.sh",
    "/etc/sysctl.d/*", "/etc/security/limits.d/*", "/home/ubuntu/.profile", "/root/.profile",
    "/etc/ssh/ssh_host_*", "/home/ubuntu/.ssh/*", "/root/.ssh/*", "/root/.bash_history",
    "/home/ubuntu/.bash_history", "/var/lib/cloud/instance", "/var/lib/cloud/instances/*",
    "/boot/grub/menu.lst", "/etc/fstab", "/etc/apt/sources.list", "/etc/cloud/cloud.cfg.d/*",
    "/usr/bin/java",
]


def run(args, cwd=None, env=None):
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    out = process.communicate()[0].decode("utf-8", "replace")
    if process.returncode != 0:
        sys.exit("measuring the image: `%s` failed: %s" % (" ".join(args), out.strip()))
    return out


def describe(path, owner):
    real = root + path
    entry = {"owner": owner}
    if os.path.islink(real):
        entry["link"] = os.readlink(real)
    elif os.path.isdir(real):
        entry["dir"] = True
    entry["mode"] = "%o" % (os.stat(real).st_mode & 0o7777) if os.path.exists(real) else ""
    if os.path.isfile(real) and not os.path.islink(real) and os.path.getsize(real) <= 65536:
        entry["text"] = open(real, "rb").read().decode("utf-8", "replace")
    return entry


found = [real for place in PLACES for real in sorted(glob.glob(root + place))]
here = root + checkout
# One `stat` for every path: owners as the system knows them.
paths = found + ([here] if os.path.isdir(here) else [])
owners = run(["stat", "-c", "%U:%G"] + paths).splitlines() if paths else []
files = {}
for real, owner in zip(found, owners):
    files[real[len(root):]] = describe(real[len(root):], owner)

lsb = dict(re.findall(r"^(\w+)=\"?([^\"\n]*)\"?$", open(root + "/etc/lsb-release").read(), re.M))
sources = re.findall(r"^deb\s+(\S+)", open(root + "/etc/apt/sources.list").read(), re.M)
packages = {}
for line in run(["dpkg-query", "-W", "-f", "${Status}\\t${Package}\\t${Version}\\n"]).splitlines():
    fields = line.split("\t")
    # A removed package whose configuration files remain is listed too, with its version: only
    # an installed one counts.
    if len(fields) == 3 and fields[0] == "install ok installed":
        packages[fields[1]] = fields[2]

java = root + "/usr/bin/java"
java_version = run([java, "-version"]) if os.path.exists(java) else ""
java_homes = {}
for entry in files.values():
    for home in re.findall(r"JAVA_HOME=(\S+)", entry.get("text", "")):
        java_homes[home] = os.path.isdir(root + home)

comboami = {"exists": os.path.isdir(here + "/.git")}
if comboami["exists"]:
    # `git status` refreshes an index whose files `chown` touched and writes it back, as root:
    # through a copy, measuring leaves the image's own index (and its owner) as it was.
    handle, index_copy = tempfile.mkstemp(prefix="comboami-index-")
    os.close(handle)
    shutil.copyfile(here + "/.git/index", index_copy)
    git_env = dict(os.environ, GIT_INDEX_FILE=index_copy)
    comboami["commit"] = run(["git", "rev-parse", "HEAD"], here).strip()
    comboami["branch"] = run(["git", "rev-parse", "--abbrev-ref", "HEAD"], here).strip()
    comboami["status"] = run(["git", "status", "--porcelain"], here, git_env)
    comboami["origin"] = run(["git", "config", "remote.origin.url"], here).strip()
    os.remove(index_copy)
    # The owners inside it too, after git ran: its top-level entries, `.git` and its index.
    inside = sorted(os.listdir(here)) + [".git/index"]
    comboami["owners"] = dict(zip(inside, run(["stat", "-c", "%U:%G"] + [
        os.path.join(here, name) for name in inside]).splitlines()))
    comboami["owner"] = owners[-1]
    comboami["entries"] = sorted(
        name + ("/" if os.path.isdir(os.path.join(here, name)) else "")
        for name in os.listdir(here) if name != ".git")
    said = run(["python", "-B", "-c", "import ds0_utils; print(ds0_utils.comboami_version()); "
                "print(ds0_utils.comboami_defaultbranch())"], here).split()
    comboami["version"], comboami["ds0_branch"] = (said + ["", ""])[:2]

report = {
    "builder": os.environ["PACKER_BUILD_NAME"],
    "release": lsb.get("DISTRIB_RELEASE", ""),
    "codename": lsb.get("DISTRIB_CODENAME", ""),
    "archive": sources[0] if sources else "",
    "comboami": comboami,
    "java": {
        "default": os.path.realpath(java)[len(root):] if os.path.exists(java) else "",
        "version": java_version,
        "homes": java_homes,
    },
    "packages": packages,
    "files": files,
}
with open(os.environ["IMAGE_REPORT"], "w") as out:
    json.dump(report, out, indent=1, sort_keys=True)
print("measured ComboAMI %s (%s, %s) on Ubuntu %s for %s" % (
    comboami.get("version"), comboami.get("branch"), comboami.get("commit"),
    report["release"], report["builder"]))
EOF
set +x
echo "provisioned $PACKER_BUILD_NAME; the image report is $report"
