"""data.dir, run.dir and submission on a real S3-compatible server (moto, in server mode on loopback):
ingest -> train (tiny) -> predict -> validate, and the clear errors of a missing bucket, a missing object and
refused credentials."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["preset=tiny"]
SETUP_CALLS = 4  # unauthenticated requests the server allows: create the user, its policy and its key


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server with IAM auth on: yields (endpoint, env with a valid key)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_CALLS)}
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        iam.create_user(UserName="seqrec")
        arn = iam.create_policy(PolicyName="all", PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": '
                                '"Allow", "Action": "*", "Resource": "*"}]}')["Policy"]["Arn"]
        iam.attach_user_policy(UserName="seqrec", PolicyArn=arn)
        key = iam.create_access_key(UserName="seqrec")["AccessKey"]
        home = tmp_path_factory.mktemp("home")
        yield endpoint, {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                         "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"], "AWS_DEFAULT_REGION": "us-east-1",
                         "HOME": str(home), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    finally:
        server.kill()
        server.wait()


def command(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_ingest_train_predict_validate_on_s3(s3, tiny_synth):
    endpoint, env = s3
    bucket = boto3.resource("s3", endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket="music")
    for f in tiny_synth.glob("*.csv"):
        bucket.upload_file(str(f), f"hear-me/{f.name}")
    data, run = "data.dir=s3://music/hear-me", "run.dir=s3://music/runs/tiny"
    done = command(env, "train.py", data, run, *TRAIN)
    assert done.returncode == 0, done.stderr[-3000:]
    keys = {o.key for o in bucket.objects.all()}
    assert {"runs/tiny/checkpoints/best.ckpt", "runs/tiny/config.yaml", "runs/tiny/reports/train.json"} <= keys
    assert any(k.startswith("runs/tiny/tb/events.out.tfevents") for k in keys)
    done = command(env, "predict.py", data, run, "submission=s3://music/out/submission.csv")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "out/submission.csv" in {o.key for o in bucket.objects.all()}
    done = command(env, "-m", "seqrec.validate", "s3://music/out/submission.csv", data)
    assert done.returncode == 0 and "valid (" in done.stdout, done.stderr[-3000:]
    for secret in (env["AWS_SECRET_ACCESS_KEY"], env["AWS_ACCESS_KEY_ID"]):
        for o in bucket.objects.filter(Prefix="runs/tiny/reports/"):
            assert secret not in o.get()["Body"].read().decode()

    missing_bucket = command(env, "train.py", "data.dir=s3://nothere/hear-me", run, *TRAIN)
    assert missing_bucket.returncode == 2 and missing_bucket.stderr.startswith("error: s3://nothere/hear-me: ")
    bucket.Object("hear-me/test.csv").delete()
    missing_object = command(env, "train.py", data, "run.dir=s3://music/runs/other", *TRAIN)
    assert missing_object.returncode == 2
    assert missing_object.stderr.startswith("error: s3://music/hear-me/test.csv: no such object")
    wrong = command({**env, "AWS_SECRET_ACCESS_KEY": "wrong"}, "train.py", data, run, *TRAIN)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: s3://music/hear-me: ")
    assert "wrong" not in wrong.stderr and "Traceback" not in wrong.stderr
