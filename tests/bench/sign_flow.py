"""How long one signing takes end to end, at the HTTP level (BENCHMARKS.md).

Starts `agreements demo` (pass the release binary) in a temporary folder with a notification
receiver of its own, then signs N agreements one after another as a browser would (cookies kept,
redirects followed by hand): the merchant's link (made by `agreements sign-link`, stamped now, with
notify_url pointing at the receiver) → the signing page → sign in (Argon2id) → confirm → the
result page; and waits for the agreement's dut_user_sign to arrive. Prints each step's median and
90th percentile, and the machine's context (`nproc`, the binary).

Usage: python3 tests/bench/sign_flow.py target/release/agreements [N]
"""

import http.client
import http.server
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse


def start_demo(binary, folder):
    process = subprocess.Popen(
        [binary, "demo", "--data-dir", folder, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    password = None
    url = None
    for line in process.stdout:
        match = re.search(r"serving (http://\S+/gateway\.do)", line)
        if match:
            url = match.group(1)
        match = re.search(r"consumer password\s+(\S+)", line)
        if match:
            password = match.group(1)
        if "Stop with Ctrl-C" in line:
            break
    if not url or not password:
        process.kill()
        raise SystemExit("the demo did not start")
    return process, url, password


class Receiver:
    """Records when each dut_user_sign arrives, by agreement number."""

    def __init__(self):
        self.arrived = {}
        self.condition = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                at = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                fields = dict(urllib.parse.parse_qsl(body))
                self.send_response(200)
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"success")
                with receiver.condition:
                    receiver.arrived[fields.get("agreement_no")] = at
                    receiver.condition.notify_all()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"

    def wait(self, agreement_no, timeout=30):
        with self.condition:
            self.condition.wait_for(lambda: agreement_no in self.arrived, timeout)
            return self.arrived.get(agreement_no)


class Browser:
    def __init__(self, host, port):
        self.connection = http.client.HTTPConnection(host, port, timeout=30)
        self.cookies = {}

    def request(self, method, path, form=None):
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        data = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";")[0]
        return response.status, response.getheader("Location"), data


def csrf(page):
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def main():
    binary = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    folder = tempfile.mkdtemp()
    receiver = Receiver()
    demo, gateway, password = start_demo(binary, folder)
    parsed = urllib.parse.urlparse(gateway)
    steps = {name: [] for name in ["link → 303", "signing page", "sign in", "confirm", "dut_user_sign after confirm", "whole signing"]}
    try:
        for i in range(rounds):
            biz = (
                '{"personal_product_code":"GENERAL_WITHHOLDING_P","sign_scene":"INDUSTRY|DIGITAL_MEDIA",'
                f'"access_params":{{"channel":"ALIPAYAPP"}},"external_agreement_no":"BENCH{os.getpid()}N{i}"}}'
            )
            link = subprocess.run(
                [binary, "sign-link", "--gateway", gateway, "--app-id", "2021000000000001",
                 "--app-key", os.path.join(folder, "app_private_key_pkcs1.pem"), "--biz", biz,
                 "--notify-url", receiver.url],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
            target = urllib.parse.urlparse(link)
            browser = Browser(parsed.hostname, parsed.port)
            start = time.perf_counter()
            status, location, _ = browser.request("GET", f"{target.path}?{target.query}")
            assert status == 303, status
            t1 = time.perf_counter()
            status, _, page = browser.request("GET", location)
            assert status == 200, status
            t2 = time.perf_counter()
            status, _, _ = browser.request("POST", f"{location}/login", {
                "logon_id": "abx@alitest.com", "password": password, "csrf": csrf(page)})
            assert status == 303, status
            status, _, page = browser.request("GET", location)
            t3 = time.perf_counter()
            status, _, result = browser.request("POST", f"{location}/confirm", {"csrf": csrf(page)})
            assert status == 200, (status, result[:200])
            t4 = time.perf_counter()
            number = re.search(r'id="agreement_no">(\d+)<', result).group(1)
            arrived = receiver.wait(number)
            assert arrived, "no dut_user_sign"
            for name, value in [("link → 303", t1 - start), ("signing page", t2 - t1), ("sign in", t3 - t2),
                                ("confirm", t4 - t3), ("dut_user_sign after confirm", arrived - t4),
                                ("whole signing", arrived - start)]:
                steps[name].append(value * 1000)
    finally:
        demo.terminate()
        demo.wait()
    print(f"{rounds} signings, one after another, against {binary} on {os.cpu_count()} CPUs (ms):")
    for name, values in steps.items():
        values.sort()
        p90 = values[max(0, int(len(values) * 0.9) - 1)]
        print(f"  {name:30} median {statistics.median(values):7.2f}   p90 {p90:7.2f}")


if __name__ == "__main__":
    main()
