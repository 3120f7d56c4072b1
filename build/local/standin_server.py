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


def main():
    for patch in EXTENSIONS:
        patch()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
