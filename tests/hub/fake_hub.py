#!/usr/bin/env python3
"""A loopback server that speaks the Hugging Face Hub's download protocol, for the hub tests.

Repositories are folders ROOT/ORG/NAME; an optional ROOT/ORG/NAME/.hub.json (never served) sets:
  "gated": true             answer 401 without "Authorization: Bearer TOKEN"
  "drop_once": [FILE...]    the first full download of FILE stops halfway through (connection closed)
  "drop_always": [FILE...]  every download of FILE (ranged or not) stops halfway through its body
  "corrupt": [FILE...]      FILE is served with one byte changed (same size, wrong SHA-256)
  "extra_siblings": [NAME]  file names listed by the API that do not exist (hostile names)
The commit of a repository is the SHA-1 of its contents; "main" and the commit both resolve.
Files of 1024 bytes or more, and *.safetensors, are served like LFS files: resolve answers 302 to
/cdn/... with X-Linked-Etag (SHA-256) and X-Linked-Size; smaller ones answer 200 with the git blob
SHA-1 as ETag. Every request is appended to the log file as "METHOD PATH RANGE". Prints
"PORT <n>" once listening on 127.0.0.1.
"""
import argparse
import hashlib
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--token", default="secret-token")
    return parser.parse_args()


ARGS = parse_args()
LOCK = threading.Lock()
DROPPED = set()


def repo_files(folder):
    files = []
    for base, _, names in os.walk(folder):
        for name in names:
            rel = os.path.relpath(os.path.join(base, name), folder)
            if rel != ".hub.json":
                files.append(rel.replace(os.sep, "/"))
    return sorted(files)


def repo_config(folder):
    path = os.path.join(folder, ".hub.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def commit_of(folder):
    digest = hashlib.sha1()
    for rel in repo_files(folder):
        digest.update(rel.encode() + b"\0")
        with open(os.path.join(folder, rel), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def is_lfs(rel, data):
    return len(data) >= 1024 or rel.endswith(".safetensors")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the request log file is what tests read
        pass

    def record(self):
        with LOCK, open(ARGS.log, "a") as f:
            f.write(f"{self.command} {self.path} {self.headers.get('Range', '-')}\n")

    def reply(self, status, headers=None, body=b"", send_body=True):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if send_body and self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message):
        self.reply(status, {"X-Error-Code": code, "Content-Type": "application/json"},
                   json.dumps({"error": message}).encode())

    def repo(self, org, name):
        folder = os.path.join(ARGS.root, org, name)
        if not os.path.isdir(folder):
            self.error(404, "RepoNotFound", "Repository not found")
            return None
        config = repo_config(folder)
        if config.get("gated") and self.headers.get("Authorization") != "Bearer " + ARGS.token:
            self.error(401, "GatedRepo", "Access to this model is restricted")
            return None
        return folder, config, commit_of(folder)

    def do_HEAD(self):
        self.handle_request()

    def do_GET(self):
        self.handle_request()

    def handle_request(self):
        self.record()
        path = urllib.parse.urlsplit(self.path).path
        parts = [urllib.parse.unquote(p) for p in path.split("/")[1:]]
        if len(parts) == 6 and parts[0] == "api" and parts[1] == "models" and parts[4] == "revision":
            return self.api(parts[2], parts[3], parts[5])
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(parts[0], parts[1], parts[3], "/".join(parts[4:]))
        if len(parts) == 4 and parts[0] == "cdn":
            return self.cdn(parts[1], parts[2], parts[3])
        self.error(404, "NotFound", "no such route")

    def api(self, org, name, revision):
        found = self.repo(org, name)
        if not found:
            return
        folder, config, commit = found
        if revision not in ("main", commit):
            return self.error(404, "RevisionNotFound", "Invalid rev id")
        siblings = [{"rfilename": f} for f in repo_files(folder) + config.get("extra_siblings", [])]
        self.reply(200, {"Content-Type": "application/json"},
                   json.dumps({"id": f"{org}/{name}", "sha": commit, "siblings": siblings}).encode())

    def resolve(self, org, name, revision, rel):
        found = self.repo(org, name)
        if not found:
            return
        folder, _, commit = found
        if revision not in ("main", commit):
            return self.error(404, "RevisionNotFound", "Invalid rev id")
        file_path = os.path.join(folder, rel)
        if rel not in repo_files(folder):
            return self.error(404, "EntryNotFound", "Entry not found")
        with open(file_path, "rb") as f:
            data = f.read()
        headers = {"X-Repo-Commit": commit}
        if is_lfs(rel, data):
            sha256 = hashlib.sha256(data).hexdigest()
            headers.update({
                "X-Linked-Etag": f'"{sha256}"',
                "X-Linked-Size": str(len(data)),
                "ETag": f'"{sha256}"',
                "Location": f"http://127.0.0.1:{self.server.server_port}/cdn/{org}/{name}/"
                            + urllib.parse.quote(rel, safe=""),
            })
            return self.reply(302, headers)
        git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        headers.update({"ETag": f'"{git_sha1}"', "Content-Type": "application/octet-stream"})
        self.reply(200, headers, data)

    def cdn(self, org, name, quoted):
        rel = urllib.parse.unquote(quoted)
        folder = os.path.join(ARGS.root, org, name)
        if rel not in repo_files(folder):
            return self.error(404, "NotFound", "no such blob")
        with open(os.path.join(folder, rel), "rb") as f:
            data = f.read()
        config = repo_config(folder)
        if rel in config.get("corrupt", []):
            data = data[:10] + bytes([data[10] ^ 0xFF]) + data[11:]
        start, status, headers = 0, 200, {"Content-Type": "application/octet-stream"}
        byte_range = self.headers.get("Range")
        if byte_range:
            start = int(byte_range.split("=")[1].split("-")[0])
            if start >= len(data):
                return self.reply(416, {"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        key = (org, name, rel)
        with LOCK:
            drop = rel in config.get("drop_once", []) and key not in DROPPED and not byte_range
            DROPPED.add(key)
        drop = drop or rel in config.get("drop_always", [])
        if drop and self.command == "GET":
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.reply(status, headers, body)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
