"""Shared helpers for the ComboAMI image: which version is baked, and where updates come from.

`cargo xtask set-version` edits the two string literals below; keep them plain literals.
"""


def comboami_version():
    """The ComboAMI version baked into the image."""
    return "2.6.3"


def comboami_defaultbranch():
    """The git branch the image pulls updates from, at build time and at boot."""
    return "2.6"


def comboami_release_tag():
    """The git tag that names this version: `release/X.Y.Z`, or `candidate/...` for pre-releases."""
    version = comboami_version()
    kind = "candidate" if "-" in version else "release"
    return "%s/%s" % (kind, version)


if __name__ == "__main__":
    print("%s %s" % (comboami_version(), comboami_defaultbranch()))
