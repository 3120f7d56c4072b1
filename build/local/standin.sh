#!/bin/sh
# The system commands of the stand-in instance in `--local` builds. `cargo xtask` puts links
# named apt-get, git, curl, lsb_release, sudo, ... to this file first on PATH when it runs the
# real build/provision.sh against a simulated image root (IMAGE_ROOT). Each call is recorded in
# XTASK_STANDIN_COMMANDS (with IMAGE_ROOT shown as `/`); then it does what the image needs:
# - apt-get and the other system tools only record (an installed JDK leaves its `java`);
# - lsb_release answers from the simulated root's etc/lsb-release;
# - git clones ComboAMI from the local fixture repository XTASK_STANDIN_COMBOAMI, and runs the
#   real git for everything else; curl fetches the EC2 tools from XTASK_STANDIN_DOWNLOADS;
# - sudo runs its command (the stand-in instance runs everything as its one user).
# XTASK_STANDIN_FAIL (from `XTASK_LOCAL_FAIL`) names builders whose apt-get fails on purpose, to
# rehearse a failure and its resume. XTASK_STANDIN_PATH is the PATH without these stand-ins.
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

case $name in
apt-get)
    case ",${XTASK_STANDIN_FAIL:-}," in
    *",${PACKER_BUILD_NAME:-},"*)
        echo "E: rehearsed failure of $PACKER_BUILD_NAME (XTASK_LOCAL_FAIL)" >&2
        exit 100
        ;;
    esac
    for package in "$@"; do
        if [ "$package" = openjdk-7-jdk ]; then
            # What the package leaves that the provisioning checks: the JDK's java, the JRE's,
            # and /usr/bin/java leading to it (through the alternatives, on a real system).
            jdk="$IMAGE_ROOT/usr/lib/jvm/java-7-openjdk-amd64"
            mkdir -p "$jdk/bin" "$jdk/jre/bin" "$IMAGE_ROOT/usr/bin"
            printf '#!/bin/sh\necho "java version \\"1.7.0_stand-in\\""\n' >"$jdk/jre/bin/java"
            chmod 755 "$jdk/jre/bin/java"
            ln -sf ../jre/bin/java "$jdk/bin/java"
            ln -sf ../lib/jvm/java-7-openjdk-amd64/jre/bin/java "$IMAGE_ROOT/usr/bin/java"
        fi
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
