#!/usr/bin/env python3
"""Prepares the loopback S3 (moto, SeaweedFS) and Azure Blob (Azurite) servers for the tests.

Called by scripts/emulators.sh once the servers answer. Standard library only, plus boto3
(a dependency of moto). Never contacts anything but 127.0.0.1.

    emulators_setup.py s3 ENDPOINT BUCKET          create the bucket (moto accepts any key)
    emulators_setup.py s3-auth ENDPOINT BUCKET     same, then switch on signature checks;
                                                   prints the KEY=VALUE credentials to use
    emulators_setup.py s3-keyed ENDPOINT BUCKET KEY_ID SECRET
                                                   create the bucket with that key (SeaweedFS),
                                                   once a write round trip works
    emulators_setup.py azure ENDPOINT ACCOUNT KEY CONTAINER

s3-auth: moto accepts any credentials until IAM authentication is switched on. We create an
IAM user allowed s3:* with an access key, create the bucket, then switch authentication on
(POST /moto-api/reset-auth with 0): from then on moto checks SigV4 signatures and refuses a
wrong key as S3 does. (moto 5.2's check miscomputes the signature of ListObjectsV2 requests
whose prefix contains '/', so this server only serves the wrong-credentials tests; the main
one runs without authentication.)

Azure: Azurite ships the well-known development account; we create the container with a
SharedKey-signed Create Container request.
"""

import base64
import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.request
from email.utils import formatdate

MOTO_BOOT_KEY = "bootstrap"  # any key works before authentication is switched on


def s3_client(service, endpoint, key_id, secret):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def s3(endpoint: str, bucket: str) -> None:
    s3_client("s3", endpoint, MOTO_BOOT_KEY, MOTO_BOOT_KEY).create_bucket(Bucket=bucket)


def s3_auth(endpoint: str, bucket: str) -> None:
    def client(service, key_id, secret):
        return s3_client(service, endpoint, key_id, secret)

    iam = client("iam", MOTO_BOOT_KEY, MOTO_BOOT_KEY)
    user = "recarch-test"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="recarch-test-s3",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    key_id, secret = key["AccessKeyId"], key["SecretAccessKey"]
    client("s3", key_id, secret).create_bucket(Bucket=bucket)

    # From here on every request must be signed with a key moto knows.
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()

    # Check both ways: the key works, a wrong one is refused.
    good = client("s3", key_id, secret)
    good.head_bucket(Bucket=bucket)
    bad = client("s3", key_id, "not-the-secret")
    try:
        bad.head_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - any refusal will do
        pass
    else:
        sys.exit("moto accepted a wrong secret key after enabling authentication")

    print(f"RECARCH_TEST_S3_AUTH_ACCESS_KEY_ID={key_id}")
    print(f"RECARCH_TEST_S3_AUTH_SECRET_ACCESS_KEY={secret}")


def s3_keyed(endpoint: str, bucket: str, key_id: str, secret: str) -> None:
    """Creates the bucket, then writes, reads and deletes an object, retrying for up to a
    minute: SeaweedFS's S3 gateway answers before its volume server has joined the master,
    and writes fail until it has."""
    import time

    client = s3_client("s3", endpoint, key_id, secret)
    deadline = time.monotonic() + 60
    key = "_emulators_setup/ready"
    while True:
        try:
            try:
                client.create_bucket(Bucket=bucket)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            except client.exceptions.BucketAlreadyExists:
                pass
            client.put_object(Bucket=bucket, Key=key, Body=b"ready")
            if client.get_object(Bucket=bucket, Key=key)["Body"].read() != b"ready":
                sys.exit(f"{endpoint} returned other bytes than were written")
            client.delete_object(Bucket=bucket, Key=key)
            return
        except Exception as e:  # noqa: BLE001 - retried until the deadline, then reported
            if time.monotonic() > deadline:
                sys.exit(f"{endpoint} is not writable after 60 s: {e}")
            time.sleep(0.5)


def azure(endpoint: str, account: str, key_b64: str, container: str) -> None:
    """Create Container, SharedKey-signed (path-style URL: ENDPOINT is .../<account>)."""
    url = f"{endpoint}/{container}?restype=container"
    path = urllib.request.urlparse(url).path
    date = formatdate(usegmt=True)
    version = "2021-08-06"
    string_to_sign = "\n".join(
        [
            "PUT",
            "",  # Content-Encoding
            "",  # Content-Language
            "",  # Content-Length (empty when 0)
            "",  # Content-MD5
            "text/plain",  # Content-Type (urllib would add a form type otherwise)
            "",  # Date (x-ms-date is used)
            "",  # If-Modified-Since
            "",  # If-Match
            "",  # If-None-Match
            "",  # If-Unmodified-Since
            "",  # Range
            f"x-ms-date:{date}\nx-ms-version:{version}",
            f"/{account}{path}\nrestype:container",
        ]
    )
    signature = base64.b64encode(
        hmac.new(base64.b64decode(key_b64), string_to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    req = urllib.request.Request(
        url,
        data=b"",
        method="PUT",
        headers={
            "x-ms-date": date,
            "x-ms-version": version,
            "Authorization": f"SharedKey {account}:{signature}",
            "Content-Length": "0",
            "Content-Type": "text/plain",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        if e.code != 409:  # 409 ContainerAlreadyExists is fine
            sys.exit(f"Azurite refused to create container {container}: {e.code} {e.read()[:500]!r}")


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["s3"] and len(args) == 3:
        s3(args[1], args[2])
    elif args[:1] == ["s3-auth"] and len(args) == 3:
        s3_auth(args[1], args[2])
    elif args[:1] == ["s3-keyed"] and len(args) == 5:
        s3_keyed(args[1], args[2], args[3], args[4])
    elif args[:1] == ["azure"] and len(args) == 5:
        azure(args[1], args[2], args[3], args[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
