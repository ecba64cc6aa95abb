"""Interoperability: PyPI python-alipay-sdk 3.4.0 (`DCAliPay`, certificate mode) against our server.

Starts `agreements demo` on a free port in a temporary folder and calls it with the SDK's own
`server_api()`: the SDK computes app_cert_sn and alipay_root_cert_sn from the demo's `cert/` files
(its own SN rules), signs, sends a GET, and verifies our answer with the key of the platform
certificate it was given.

Usage: python python_dcalipay.py PATH/TO/agreements
Run by .ci/run in a venv of its own (this SDK's `alipay` package would shadow alipay-sdk-python's).
"""

import os
import signal
import sys
import tempfile
import time

# The SDK stamps requests with the local clock; the gateway reads Beijing time.
os.environ["TZ"] = "Asia/Shanghai"
time.tzset()

from demo import RESULTS, case, start_server  # noqa: E402 - beside this script

from alipay import DCAliPay  # noqa: E402
from alipay.exceptions import AliPayException, AliPayValidationError  # noqa: E402

APP_ID = "2021000000000001"


def read(*parts):
    with open(os.path.join(*parts), encoding="ascii") as f:
        return f.read()


def client(url, data_dir, platform_cert="alipayCertPublicKey_RSA2.crt"):
    cert_dir = os.path.join(data_dir, "cert")
    sdk = DCAliPay(
        appid=APP_ID,
        app_private_key_string=read(data_dir, "app_private_key_pkcs1.pem"),
        app_public_key_cert_string=read(cert_dir, f"appCertPublicKey_{APP_ID}.crt"),
        alipay_public_key_cert_string=read(cert_dir, platform_cert),
        alipay_root_cert_string=read(cert_dir, "alipayRootCert.crt"),
    )
    # Test-driver setting: the SDK has no gateway option (it knows only Alipay's two hosts).
    sdk._gateway = url
    return sdk


@case("DCAliPay batch.query: the SDK's SNs accepted, our answer verified by the SDK")
def batch_query(url, data_dir):
    node = client(url, data_dir).server_api(
        "alipay.user.agreement.batch.query",
        {"personal_product_code": "GENERAL_WITHHOLDING_P", "alipay_user_id": "2088101122675263"},
    )
    assert node["code"] == "10000", node
    assert "20245920000000000001" in [i["agreement_no"] for i in node["usage_agreement_info_list"]], node


@case("DCAliPay query: a business error verified by the SDK")
def query_missing(url, data_dir):
    node = client(url, data_dir).server_api(
        "alipay.user.agreement.query", {"agreement_no": "20990101000000000000"}
    )
    assert node["sub_code"] == "USER_AGREEMENT_NOT_EXIST", node


@case("DCAliPay alipaycert.download: the platform certificate the SDK holds, by its own SN")
def download(url, data_dir):
    import base64
    sdk = client(url, data_dir)
    sn = DCAliPay.get_cert_sn(read(data_dir, "cert", "alipayCertPublicKey_RSA2.crt"))
    node = sdk.server_api("alipay.open.app.alipaycert.download", {"alipay_cert_sn": sn})
    pem = base64.b64decode(node["alipay_cert_content"]).decode("ascii")
    assert DCAliPay.get_cert_sn(pem) == sn, pem


@case("DCAliPay holding another platform certificate rejects our answer")
def wrong_platform_cert(url, data_dir):
    sdk = client(url, data_dir, platform_cert=f"appCertPublicKey_{APP_ID}.crt")
    try:
        sdk.server_api("alipay.user.agreement.query", {"agreement_no": "20245920000000000001"})
    except AliPayValidationError:
        return
    except AliPayException as e:
        raise AssertionError(f"refused for another reason: {e}")
    raise AssertionError("the SDK accepted an answer signed by another key")


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "data")
        process, url = start_server(binary, data_dir)
        try:
            for test in (batch_query, query_missing, download, wrong_platform_cert):
                test(url, data_dir)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    passed, failed = RESULTS.count(True), RESULTS.count(False)
    print(f"DCAliPay interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
