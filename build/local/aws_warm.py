"""The stand-in's `aws`: the real AWS CLI (the virtualenv's awscli), kept warm.

Every `aws` process spends about half a second of CPU importing botocore and loading the service
models before it sends one request; a local rehearsal makes hundreds of calls. This server imports
the CLI once, then forks for each call: the child runs the CLI's own `main` with the caller's
arguments, environment, working folder and standard streams (passed over the socket), so a call
behaves as `aws ARGS` would, exit status included, for a few milliseconds of CPU.

    python aws_warm.py serve SOCKET      # started by `cargo xtask` with the stand-in
    python -I -S aws_warm.py call SOCKET ARGS...   # what the stand-in's `aws` runs

It serves only the stand-in (xtask/src/standin.rs): against AWS the tool runs the user's `aws`.
"""

import array
import gc
import json
import os
import signal
import socket
import struct
import sys

# The request's header: its length, then JSON (argv, env, cwd); the three streams ride along.
HEADER = struct.Struct("!I")


def serve(path):
    """Listens on `path` until killed, one forked child per call."""
    import awscli.clidriver

    driver = awscli.clidriver.create_clidriver()
    # What the first call of each kind would load: the command table and the models the tool uses.
    commands = driver._get_command_table()
    for service in ("ec2", "s3api", "sts"):
        # Builds (and keeps) the service's operations table, loading its model.
        commands[service]._get_command_table()
    # A client of each service, made with throwaway keys so that no credentials are looked up
    # (each call resolves its own): it loads and keeps the models, endpoint rules and partitions.
    for service in ("ec2", "s3", "sts"):
        try:
            driver.session.create_client(
                service, region_name="us-east-1", aws_access_key_id="warm", aws_secret_access_key="warm"
            )
        except Exception:
            pass
    # Objects made so far are never collected: the children's copies stay shared with this
    # process instead of being copied page by page when the collector touches them.
    gc.freeze()
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket is the caller's alone
    # By its name in its folder: a socket's path may not exceed 107 bytes, a repository's may.
    os.chdir(os.path.dirname(os.path.abspath(path)))
    listener.bind(os.path.basename(path))
    os.umask(old_mask)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print(f"aws_warm: serving {path}", file=sys.stderr, flush=True)
    while True:
        connection, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            os._exit(answer(driver, connection))
        connection.close()


def receive(connection):
    """The call's header and its three file descriptors."""
    fds = array.array("i")
    data = b""
    while len(data) < HEADER.size:
        chunk, ancillary, _, _ = connection.recvmsg(65536, socket.CMSG_LEN(3 * fds.itemsize))
        if not chunk:
            raise EOFError("the caller went away")
        data += chunk
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    (length,) = HEADER.unpack(data[: HEADER.size])
    body = data[HEADER.size :]
    while len(body) < length:
        chunk = connection.recv(length - len(body))
        if not chunk:
            raise EOFError("the caller went away")
        body += chunk
    return json.loads(body), list(fds)


def answer(driver, connection):
    """Runs one call in this (forked) child; tells the caller its exit status."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        request, fds = receive(connection)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = ["aws"] + request["argv"]  # usage errors name the program as `aws` does
        status = driver.main(request["argv"])
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else 1
    except BaseException as error:  # the caller must hear of it, as from a crashed `aws`
        print(f"aws_warm: {error!r}", file=sys.stderr)
        status = 255
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    try:
        connection.sendall(bytes([status & 0xFF]))
    except OSError:
        pass
    return status & 0xFF


def call(path, argv):
    """Sends this process's arguments, environment and streams; exits as the call did."""
    body = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.chdir(os.path.dirname(os.path.abspath(path)))
        connection.connect(os.path.basename(path))
    except OSError as error:
        print(f"aws: the stand-in's aws server at {path} does not answer ({error.strerror}), "
              "so the stand-in is not running (whole)\nfix: start it with `cargo xtask local up`",
              file=sys.stderr)
        return 255
    fds = array.array("i", [0, 1, 2])
    connection.sendmsg([HEADER.pack(len(body)) + body],
                       [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
    status = connection.recv(1)
    if not status:
        print("aws: the stand-in's aws server stopped during the call", file=sys.stderr)
        return 255
    return status[0]


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "call":
        sys.exit(call(sys.argv[2], sys.argv[3:]))
    else:
        sys.exit("usage: aws_warm.py serve SOCKET | call SOCKET ARGS...")
