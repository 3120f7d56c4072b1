"""The local AWS stand-in's server: moto's own server, with what moto lacks patched in.

Run with the stand-in virtualenv's python, taking moto_server's arguments:

    target/standin-venv/bin/python build/local/standin_server.py -H 127.0.0.1 -p PORT

`cargo xtask` starts it this way (xtask/src/standin.rs). Every call the tool makes must work
against the stand-in, so where the pinned moto (5.2.5) lacks one, an extension below provides it.

Adding an extension: write a function that patches moto, decorate it with `@extension`, and give
it a docstring naming the AWS calls it provides. Extensions run once, in the order written, before
the server starts; each imports what it patches itself, so one extension never depends on another.
Keep each one small and faithful to AWS's documented behaviour (the answer's shape comes from
botocore's model, so attributes only need the snake_case name of the field).
"""

import sys
import os
from datetime import datetime, timezone

EXTENSIONS = []


def extension(patch):
    """Registers `patch` to run before the server starts."""
    EXTENSIONS.append(patch)
    return patch


def _utc_timestamp(value):
    """An AWS timestamp (ISO 8601 string, datetime or epoch seconds) as
    `YYYY-MM-DDTHH:MM:SS.000Z`, in UTC, rounded to the minute."""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    # AWS rounds a deprecation time to the minute.
    if value.second >= 30:
        value = value.replace(second=0, microsecond=0)
        value = datetime.fromtimestamp(value.timestamp() + 60, tz=timezone.utc)
    else:
        value = value.replace(second=0, microsecond=0)
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@extension
def ec2_image_deprecation():
    """EC2 `EnableImageDeprecation` and `DisableImageDeprecation`; `DescribeImages` shows
    `DeprecationTime` (moto 5.2.5 has neither)."""
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import EC2ClientError, InvalidAMIIdError
    from moto.ec2.models.amis import Ami, AmiBackend
    from moto.ec2.responses.amis import AmisResponse

    # Serialized as `DeprecationTime` when set; an image starts without one.
    Ami.deprecation_time = None

    def find(backend, ami_id):
        if ami_id not in backend.amis:
            raise InvalidAMIIdError(ami_id)
        return backend.amis[ami_id]

    def enable_image_deprecation(self, ami_id, deprecate_at):
        image = find(self, ami_id)
        at = _utc_timestamp(deprecate_at)
        # As AWS: a deprecation time is never in the past (a minute's slack for the rounding).
        if at < _utc_timestamp(datetime.now(timezone.utc).timestamp() - 60):
            raise EC2ClientError(
                "InvalidParameterValue",
                f"The DeprecateAt value {at} is in the past; specify a future time.",
            )
        image.deprecation_time = at

    def disable_image_deprecation(self, ami_id):
        find(self, ami_id).deprecation_time = None

    AmiBackend.enable_image_deprecation = enable_image_deprecation
    AmiBackend.disable_image_deprecation = disable_image_deprecation

    def enable_response(self):
        ami_id = self._get_param("ImageId")
        deprecate_at = self._get_param("DeprecateAt")
        self.error_on_dryrun()
        self.ec2_backend.enable_image_deprecation(ami_id, deprecate_at)
        return ActionResult({"Return": True})

    def disable_response(self):
        ami_id = self._get_param("ImageId")
        self.error_on_dryrun()
        self.ec2_backend.disable_image_deprecation(ami_id)
        return ActionResult({"Return": True})

    AmisResponse.enable_image_deprecation = enable_response
    AmisResponse.disable_image_deprecation = disable_response


@extension
def ec2_register_image_location():
    """EC2 `RegisterImage` of an instance-store image keeps its `ImageLocation` (the S3 manifest),
    root device type `instance-store`, virtualization type and architecture, as AWS does (moto
    5.2.5 keeps only the name and description)."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses.amis import AmisResponse

    def register_image(self):
        name = self._get_param("Name")
        description = self._get_param("Description", "")
        location = self._get_param("ImageLocation")
        self.error_on_dryrun()
        image = self.ec2_backend.register_image(name, description)
        if location:
            image.image_location = location
            image.root_device_type = "instance-store"
        for param, attribute in [
            ("VirtualizationType", "virtualization_type"),
            ("Architecture", "architecture"),
            ("RootDeviceName", "root_device_name"),
        ]:
            value = self._get_param(param)
            if value:
                setattr(image, attribute, value)
        return ActionResult({"ImageId": image.id})

    AmisResponse.register_image = register_image


@extension
def ec2_image_deregistration_protection():
    """EC2 `EnableImageDeregistrationProtection` (with `WithCooldown`) and
    `DisableImageDeregistrationProtection`; `DescribeImages` shows `DeregistrationProtection`;
    `DeregisterImage` refuses a protected image (moto 5.2.5 has none of it).

    As AWS documents it: enabling answers `enabled-with-cooldown` or `enabled-without-cooldown`
    (the value `DescribeImages` then shows), disabling answers `disabled`, and an image protected
    with the cooldown stays protected for 24 hours after protection is disabled. Not found in
    AWS's documentation, so chosen here: during the cooldown `DescribeImages` shows
    `disabled-until YYYY-MM-DDTHH:MM:SS.000Z`, and a refused `DeregisterImage` is
    `OperationNotPermitted`."""
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import InvalidAMIIdError, OperationNotPermitted
    from moto.ec2.models.amis import Ami, AmiBackend
    from moto.ec2.responses.amis import AmisResponse

    cooldown_seconds = 24 * 60 * 60
    # `enabled`, the cooldown chosen when it was enabled, and when a disabled cooldown ends.
    Ami.protection_enabled = False
    Ami.protection_cooldown = False
    Ami.protection_until = None

    def now():
        # A rehearsal of the day after: `XTASK_STANDIN_DIR/clock-offset` (seconds) moves this
        # clock forward, so a 24-hour cooldown can end in a test.
        offset = 0.0
        try:
            with open(os.path.join(os.environ.get("XTASK_STANDIN_DIR", ""), "clock-offset")) as f:
                offset = float(f.read().strip() or 0)
        except (OSError, ValueError):
            pass
        return datetime.now(timezone.utc).timestamp() + offset

    def until_text(at):
        return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def shown(image):
        if image.protection_enabled:
            return "enabled-with-cooldown" if image.protection_cooldown else "enabled-without-cooldown"
        if image.protection_until is not None and image.protection_until > now():
            return f"disabled-until {until_text(image.protection_until)}"
        return "disabled"

    # Serialized as `DeregistrationProtection` (botocore's model names the field).
    Ami.deregistration_protection = property(shown)

    def find(backend, ami_id):
        if ami_id not in backend.amis:
            raise InvalidAMIIdError(ami_id)
        return backend.amis[ami_id]

    def enable_response(self):
        image = find(self.ec2_backend, self._get_param("ImageId"))
        cooldown = self._get_bool_param("WithCooldown", False)
        self.error_on_dryrun()
        image.protection_enabled = True
        image.protection_cooldown = cooldown
        # A cooldown already running keeps running: enabling and disabling again without the
        # cooldown must not shorten it.
        return ActionResult({"Return": shown(image)})

    def disable_response(self):
        image = find(self.ec2_backend, self._get_param("ImageId"))
        self.error_on_dryrun()
        if image.protection_enabled and image.protection_cooldown:
            image.protection_until = now() + cooldown_seconds
        image.protection_enabled = False
        image.protection_cooldown = False
        return ActionResult({"Return": "disabled"})

    AmisResponse.enable_image_deregistration_protection = enable_response
    AmisResponse.disable_image_deregistration_protection = disable_response

    deregister = AmiBackend.deregister_image

    def deregister_image(self, ami_id, *args, **kwargs):
        image = self.amis.get(ami_id)
        if image is not None and image.protection_enabled:
            raise OperationNotPermitted(
                f"The image {ami_id} has deregistration protection enabled; disable it first "
                "(DisableImageDeregistrationProtection)."
            )
        if image is not None and image.protection_until is not None and image.protection_until > now():
            raise OperationNotPermitted(
                f"The image {ami_id} is in its deregistration protection cooldown until "
                f"{until_text(image.protection_until)}; it can be deregistered after that."
            )
        return deregister(self, ami_id, *args, **kwargs)

    AmiBackend.deregister_image = deregister_image


def _rehearsal():
    """The failures `cargo xtask` rehearses, read on every call from `rehearsal.json` in the
    stand-in's folder (`XTASK_STANDIN_DIR`), which each `--local` command rewrites from its
    `XTASK_LOCAL_*` variables; empty when there is none."""
    import json
    import os

    folder = os.environ.get("XTASK_STANDIN_DIR")
    if not folder:
        return {}
    try:
        with open(os.path.join(folder, "rehearsal.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


@extension
def ec2_seeded_images_per_region():
    """Seeded images (`MOTO_AMIS_PATH`) that name a `region_name` exist only in that region, as
    on AWS (moto puts every seeded image in every region)."""
    from moto.ec2.models import amis

    regions = {}
    for seed in amis.AMIS:
        if seed.get("region_name"):
            regions.setdefault(seed["ami_id"], set()).add(seed["region_name"])
    original = amis.AmiBackend._load_amis

    def load(self):
        original(self)
        for ami_id, where in regions.items():
            if self.region_name not in where:
                self.amis.pop(ami_id, None)

    amis.AmiBackend._load_amis = load


@extension
def ec2_rehearse_missing_images():
    """`XTASK_LOCAL_MISSING_AMI=ami-...,...`: those images are gone, as when Canonical
    deregisters a base image: `DescribeImages` no longer lists them, `RunInstances` refuses them."""
    from moto.ec2.exceptions import InvalidAMIIdError
    from moto.ec2.models.amis import AmiBackend
    from moto.ec2.models.instances import InstanceBackend

    describe = AmiBackend.describe_images

    def describe_images(self, ami_ids=None, *args, **kwargs):
        missing = set(_rehearsal().get("missing_amis", []))
        for ami_id in ami_ids or []:
            if ami_id in missing:
                raise InvalidAMIIdError(ami_id)
        images = describe(self, ami_ids, *args, **kwargs)
        return [image for image in images if image.id not in missing]

    AmiBackend.describe_images = describe_images
    run = InstanceBackend.run_instances

    def run_instances(self, image_id, *args, **kwargs):
        if image_id in set(_rehearsal().get("missing_amis", [])):
            raise InvalidAMIIdError(image_id)
        return run(self, image_id, *args, **kwargs)

    InstanceBackend.run_instances = run_instances


@extension
def ec2_deprecated_images_hidden():
    """As AWS: `DescribeImages` leaves out other accounts' deprecated images unless the request
    sets `IncludeDeprecated` or names them in `ImageIds`; an owner always sees its own (moto
    5.2.5 shows every image). `XTASK_LOCAL_DEPRECATED_AMI=ami-...,...` deprecates those images
    (since 2017-07-01), as Canonical deprecates its old ones."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses.amis import AmisResponse

    since = "2017-07-01T00:00:00.000Z"

    def describe_images(self):
        self.error_on_dryrun()
        ami_ids = self._get_param("ImageIds", [])
        images = self.ec2_backend.describe_images(
            ami_ids=ami_ids,
            filters=self._filters_from_querystring(),
            exec_users=self._get_param("ExecutableUsers", []),
            owners=self._get_param("Owners", []),
        )
        rehearsed = set(_rehearsal().get("deprecated_amis", []))
        for image in images:
            if image.id in rehearsed and not getattr(image, "deprecation_time", None):
                image.deprecation_time = since
        if not (ami_ids or self._get_bool_param("IncludeDeprecated", False)):
            now = _utc_timestamp(datetime.now(timezone.utc).timestamp())
            account = self.ec2_backend.account_id
            images = [
                image
                for image in images
                if image.owner_id == account
                or not getattr(image, "deprecation_time", None)
                or image.deprecation_time > now
            ]
        return ActionResult({"Images": images})

    AmisResponse.describe_images = describe_images


@extension
def ec2_image_block_public_access():
    """EC2 `GetImageBlockPublicAccessState`, `EnableImageBlockPublicAccess` and
    `DisableImageBlockPublicAccess` (moto 5.2.5 has none), per region, `unblocked` at first;
    `XTASK_LOCAL_BLOCK_PUBLIC=REGION,...` turns it on in those regions. While it is on, making an
    image public fails as on AWS."""
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import OperationNotPermitted
    from moto.ec2.models.amis import AmiBackend
    from moto.ec2.responses.amis import AmisResponse

    def state(backend):
        if backend.region_name in _rehearsal().get("block_public", []):
            return "block-new-sharing"
        return getattr(backend, "image_block_public_access_state", "unblocked")

    def get_state(self):
        self.error_on_dryrun()
        return ActionResult(
            {"ImageBlockPublicAccessState": state(self.ec2_backend), "ManagedBy": "account"}
        )

    def enable(self):
        self.error_on_dryrun()
        self.ec2_backend.image_block_public_access_state = self._get_param(
            "ImageBlockPublicAccessState", "block-new-sharing"
        )
        return ActionResult({"ImageBlockPublicAccessState": state(self.ec2_backend)})

    def disable(self):
        self.error_on_dryrun()
        self.ec2_backend.image_block_public_access_state = "unblocked"
        return ActionResult({"ImageBlockPublicAccessState": state(self.ec2_backend)})

    AmisResponse.get_image_block_public_access_state = get_state
    AmisResponse.enable_image_block_public_access = enable
    AmisResponse.disable_image_block_public_access = disable

    modify = AmiBackend.modify_image_attribute

    def modify_image_attribute(self, ami_id, launch_permissions_to_add, *args, **kwargs):
        if {"Group": "all"} in (launch_permissions_to_add or []) and state(self) != "unblocked":
            raise OperationNotPermitted(
                "You can't publicly share this image because block public access for AMIs is enabled for this account."
            )
        return modify(self, ami_id, launch_permissions_to_add, *args, **kwargs)

    AmiBackend.modify_image_attribute = modify_image_attribute


@extension
def s3_list_buckets_region():
    """S3 `ListBuckets` names each bucket's `BucketRegion`, as AWS does when the request has at
    least one parameter (`prefix`, `bucket-region`, `max-buckets`, `continuation-token`);
    moto 5.2.5 never names it."""
    from moto.core.responses import ActionResult
    from moto.s3.responses import S3Response

    listed = S3Response.all_buckets

    def all_buckets(self):
        response = listed(self)
        if not any(
            self._get_param(p) for p in ("prefix", "bucket-region", "max-buckets", "continuation-token")
        ):
            return response
        prefix = self._get_param("prefix")
        bucket_region = self._get_param("bucket-region")
        max_buckets = self._get_param("max-buckets")
        buckets = self.backend.list_buckets(
            prefix=prefix, bucket_region=bucket_region, max_buckets=max_buckets
        )
        return self.serialized(
            ActionResult(
                {
                    "Owner": {"ID": "bcaf1ffd86f41161ca5fb16fd081034f", "DisplayName": "webfile"},
                    "Buckets": [
                        {
                            "Name": bucket.name,
                            "CreationDate": bucket.creation_date_ISO8601,
                            "BucketRegion": bucket.region_name,
                        }
                        for bucket in buckets
                    ],
                }
            )
        )

    S3Response.all_buckets = all_buckets


@extension
def sts_rehearse_account():
    """`XTASK_LOCAL_ACCOUNT=123456789012`: `GetCallerIdentity` says the credentials belong to
    that account, to rehearse credentials of the wrong account."""
    from moto.sts.models import STSBackend

    identity = STSBackend.get_caller_identity

    def get_caller_identity(self, access_key_id, region):
        user_id, arn, account_id = identity(self, access_key_id, region)
        other = _rehearsal().get("account")
        if other:
            return user_id, arn.replace(account_id, other), other
        return user_id, arn, account_id

    STSBackend.get_caller_identity = get_caller_identity


def import_key_pair():
    """`XTASK_STANDIN_KEY_PAIR=NAME:PUBLIC_KEY_FILE` and `XTASK_STANDIN_REGIONS=R1,R2`: the
    stand-in's SSH key, imported into each region (key pairs are regional) before the server
    answers, as `ImportKeyPair` would, without a client process of its own."""
    pair, regions = os.environ.get("XTASK_STANDIN_KEY_PAIR"), os.environ.get("XTASK_STANDIN_REGIONS")
    if not pair or not regions:
        return
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    name, path = pair.split(":", 1)
    with open(path, "rb") as key:
        material = key.read()
    for region in regions.split(","):
        ec2_backends[DEFAULT_ACCOUNT_ID][region].import_key_pair(name, material, tags={})


def main():
    for patch in EXTENSIONS:
        patch()
    import_key_pair()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
