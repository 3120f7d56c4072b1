#!/bin/sh
# The system commands of the stand-in instance in `--local` builds. `cargo xtask` puts links
# named apt-get, git, curl, lsb_release, sudo, ... to this file first on PATH when it runs the
# real build/provision.sh against a simulated image root (IMAGE_ROOT). Each call is recorded in
# XTASK_STANDIN_COMMANDS (with IMAGE_ROOT shown as `/`); then it does what the real command would
# do to the image, and refuses what the real one would refuse:
# - apt-get answers from the archive fixture of the root's release (standin/archive/CODENAME.txt:
#   the archives that still serve it and the packages they have): `update` fails (exit 100) when
#   a source of the root's sources.list does not serve that release any more, `install` fails
#   like apt-get (exit 100, `E: Unable to locate package ...`) for a package the release does not
#   have, and records what it installs in the root's var/lib/dpkg/standin-packages, which the
#   stand-in dpkg-query answers from (an installed JDK also leaves its `java`);
# - update-rc.d makes the rc links (etc/rcN.d/SNNname) it would make; chown refuses a user or
#   group the root's etc/passwd and etc/group lack, and records owners for the stand-in
#   `stat -c %U:%G` (the stand-in instance runs everything as its one user);
# - lsb_release answers from the simulated root's etc/lsb-release;
# - git clones ComboAMI from the run's repository XTASK_STANDIN_COMBOAMI (this project's commit
#   being built), and runs the real git for everything else; curl fetches the EC2 tools from
#   XTASK_STANDIN_DOWNLOADS;
# - sudo runs its command.
# XTASK_STANDIN_FAIL (from `XTASK_LOCAL_FAIL`) names builders whose apt-get fails on purpose, to
# rehearse a failure and its resume; standin/wrong-version (from `XTASK_LOCAL_WRONG_VERSION`)
# names builders whose checkout is edited before the report, to rehearse a wrong image.
# XTASK_STANDIN_SLOW (from `XTASK_LOCAL_SLOW`) names builders whose `apt-get update` meets a slow
# mirror (up to two minutes), so an interrupt is certain to find them still building.
# XTASK_STANDIN_PATH is the PATH without these stand-ins.
set -eu
name=$(basename "$0")
: "${IMAGE_ROOT:?the stand-in commands run only against a simulated image root}"
: "${XTASK_STANDIN_COMMANDS:?set by the template of a local build}"

line="$name $*"
while :; do
    case $line in
        *"$IMAGE_ROOT"*) line="${line%%"$IMAGE_ROOT"*}${line#*"$IMAGE_ROOT"}" ;;
        *) break ;;
    esac
done
printf '%s\n' "$line" >>"$XTASK_STANDIN_COMMANDS"

real() {
    PATH=${XTASK_STANDIN_PATH:?set by the template of a local build} command -v "$1"
}

standin=$(dirname "${XTASK_STANDIN_COMBOAMI:?set by the template of a local build}")
installed="$IMAGE_ROOT/var/lib/dpkg/standin-packages"
owners="$IMAGE_ROOT.owners"

# Whether the archive fixture says URL serves this release (`serves PATTERN` lines).
serves() {
    while read -r kind pattern _; do
        if [ "$kind" = serves ]; then
            # shellcheck disable=SC2254 # the fixture's patterns are globs on purpose
            case ${1%/} in $pattern) return 0 ;; esac
        fi
    done <"$archive"
    return 1
}

apt_update() {
    failed=0
    while read -r kind url suite _; do
        [ "$kind" = deb ] || continue
        url=${url%/}
        if ! serves "$url"; then
            echo "Err $url $suite/main amd64 Packages" >&2
            echo "  404  Not Found" >&2
            echo "W: Failed to fetch $url/dists/$suite/main/binary-amd64/Packages  404  Not Found" >&2
            failed=1
        fi
    done <"$IMAGE_ROOT/etc/apt/sources.list"
    if [ "$failed" = 1 ]; then
        echo "E: Some index files failed to download. They have been ignored, or old ones used instead." >&2
        exit 100
    fi
}

apt_install() {
    wanted='' packages=''
    while [ $# -gt 0 ]; do
        case $1 in
        -o) shift ;;
        -*) ;;
        install) packages=yes ;;
        *) [ -n "$packages" ] && wanted="$wanted $1" ;;
        esac
        shift
    done
    found=''
    for package in $wanted; do
        version=$(awk -v p="$package" '$1 == "package" && $2 == p { print $3 }' "$archive")
        if [ -z "$version" ]; then
            echo "E: Unable to locate package $package" >&2
            exit 100
        fi
        found="$found $package=$version"
    done
    for pair in $found; do
        package=${pair%%=*}
        if ! grep -q "^$package " "$installed" 2>/dev/null; then
            printf '%s %s\n' "$package" "${pair#*=}" >>"$installed"
        fi
        if [ "$package" = openjdk-7-jdk ]; then
            # What the package leaves that the provisioning checks: the JDK's java, the JRE's,
            # and /usr/bin/java leading to it (through the alternatives, on a real system).
            jdk="$IMAGE_ROOT/usr/lib/jvm/java-7-openjdk-amd64"
            mkdir -p "$jdk/bin" "$jdk/jre/bin" "$IMAGE_ROOT/usr/bin"
            printf '#!/bin/sh\necho "java version \\"1.7.0_stand-in\\"" >&2\n' >"$jdk/jre/bin/java"
            chmod 755 "$jdk/jre/bin/java"
            ln -sf ../jre/bin/java "$jdk/bin/java"
            ln -sf ../lib/jvm/java-7-openjdk-amd64/jre/bin/java "$IMAGE_ROOT/usr/bin/java"
        fi
    done
}

# The last step before the report: a rehearsed wrong image gets its checkout edited, as the
# 2.6 build did when it wrote its input version into the checkout.
rehearse_wrong_version() {
    if grep -qx "${PACKER_BUILD_NAME:-}" "$standin/wrong-version" 2>/dev/null; then
        ds0="$IMAGE_ROOT/home/ubuntu/datastax_ami/ds0_utils.py"
        sed -i '/def comboami_version/,/return/s/return "\(.*\)"/return "\1-wrong"/' "$ds0"
    fi
}

# A slow mirror, rehearsed. It says so twice a second: once Packer has gone (cancelled or
# killed), a write to the closed session ends it, so nothing outlives the build.
rehearse_slow_mirror() {
    case ",${XTASK_STANDIN_SLOW:-}," in
    *",${PACKER_BUILD_NAME:-},"*)
        for second in $(seq 1 120); do
            echo "waiting for a slow mirror, ${second} s (rehearsed: XTASK_LOCAL_SLOW)"
            sleep 0.5
            echo "waiting for a slow mirror, ${second}.5 s (rehearsed: XTASK_LOCAL_SLOW)"
            sleep 0.5
        done
        ;;
    esac
}

case $name in
apt-get)
    codename=$(sed -n 's/^DISTRIB_CODENAME=//p' "$IMAGE_ROOT/etc/lsb-release")
    archive="$standin/archive/$codename.txt"
    case ",${XTASK_STANDIN_FAIL:-}," in
    *",${PACKER_BUILD_NAME:-},"*)
        echo "E: rehearsed failure of $PACKER_BUILD_NAME (XTASK_LOCAL_FAIL)" >&2
        exit 100
        ;;
    esac
    for arg in "$@"; do
        case $arg in
        update) rehearse_slow_mirror; apt_update; exit 0 ;;
        install) apt_install "$@"; exit 0 ;;
        clean) rehearse_wrong_version; exit 0 ;;
        dist-upgrade) exit 0 ;;
        esac
    done
    echo "E: the stand-in apt-get does not know \`$*\`" >&2
    exit 100
    ;;
dpkg-query)
    # shellcheck disable=SC2016 # dpkg-query's own format, not the shell's
    if [ "$*" != '-W -f ${Status}\t${Package}\t${Version}\n' ]; then
        printf '%s\n' "the stand-in dpkg-query answers only \`-W -f '\${Status}\\t\${Package}\\t\${Version}\\n'\`" >&2
        exit 2
    fi
    awk '{ printf "install ok installed\t%s\t%s\n", $1, $2 }' "$installed"
    ;;
update-rc.d)
    [ "${1:-}" = -f ] && shift
    script=$1 action=${2:-} number=${3:-}
    if [ ! -f "$IMAGE_ROOT/etc/init.d/$script" ]; then
        echo "update-rc.d: /etc/init.d/$script: file does not exist" >&2
        exit 1
    fi
    if [ "$action" != start ]; then
        echo "the stand-in update-rc.d knows only \`start NN LEVELS .\`" >&2
        exit 2
    fi
    shift 3
    for level in "$@"; do
        [ "$level" = . ] && break
        mkdir -p "$IMAGE_ROOT/etc/rc$level.d"
        ln -sf "../init.d/$script" "$IMAGE_ROOT/etc/rc$level.d/S$number$script"
    done
    ;;
chown)
    recursive=''
    [ "$1" = -R ] && { recursive=R; shift; }
    owner=$1
    shift
    user=${owner%%:*} group=${owner#*:}
    if ! grep -q "^$user:" "$IMAGE_ROOT/etc/passwd" || ! grep -q "^$group:" "$IMAGE_ROOT/etc/group"; then
        echo "chown: invalid user: '$owner'" >&2
        exit 1
    fi
    for path in "$@"; do
        if [ ! -e "$path" ]; then
            echo "chown: cannot access '${path#"$IMAGE_ROOT"}': No such file or directory" >&2
            exit 1
        fi
        printf '%s %s %s\n' "$owner" "${recursive:--}" "${path#"$IMAGE_ROOT"}" >>"$owners"
    done
    ;;
stat)
    if [ "${1:-}" != -c ] || [ "${2:-}" != %U:%G ]; then
        exec "$(real stat)" "$@"
    fi
    shift 2
    for path in "$@"; do
        # The last chown of the path (or of a folder above it, recursively) wins; what the
        # provisioning made without a chown is root's, as on a real instance.
        awk -v p="${path#"$IMAGE_ROOT"}" 'BEGIN { o = "root:root" }
            $3 == p || ($2 == "R" && index(p, $3 "/") == 1) { o = $1 }
            END { print o }' "$owners"
    done
    ;;
lsb_release)
    case $* in
    *r*) key=DISTRIB_RELEASE ;;
    *c*) key=DISTRIB_CODENAME ;;
    *) key=DISTRIB_DESCRIPTION ;;
    esac
    sed -n "s/^$key=//p" "$IMAGE_ROOT/etc/lsb-release" | tr -d '"'
    ;;
sudo)
    while [ $# -gt 0 ]; do
        case $1 in
        -u | -g) shift 2 ;;
        -*) shift ;;
        *) break ;;
        esac
    done
    exec "$@"
    ;;
git)
    git=$(real git)
    if [ "${1:-}" = clone ]; then
        shift
        for arg in "$@"; do
            shift
            case $arg in
            https://github.com/riptano/ComboAMI.git)
                arg=${XTASK_STANDIN_COMBOAMI:?set by the template of a local build}
                ;;
            esac
            set -- "$@" "$arg"
        done
        "$git" clone --quiet "$@"
        # The clone's origin is GitHub, as on a real instance: the image pulls from there.
        for dest in "$@"; do :; done
        cd "$dest" && exec "$git" remote set-url origin https://github.com/riptano/ComboAMI.git
    fi
    exec "$git" "$@"
    ;;
curl)
    output='' url=''
    while [ $# -gt 0 ]; do
        case $1 in
        -o) output=$2; shift ;;
        http*) url=$1 ;;
        esac
        shift
    done
    fixture="${XTASK_STANDIN_DOWNLOADS:?set by the template of a local build}/$(basename "$url")"
    if [ ! -f "$fixture" ]; then
        echo "curl: (22) The requested URL returned error: 404 ($url has no fixture $fixture)" >&2
        exit 22
    fi
    cp "$fixture" "${output:?the stand-in curl needs -o FILE}"
    ;;
*)
    # apt-key, update-rc.d, update-java-alternatives, chown, ...: recorded above, nothing else.
    ;;
esac
