"""Interoperability: the official Python SDK (PyPI alipay-sdk-python 3.7.1411) against our server.

Starts `agreements demo` on a free port in a temporary folder, then drives the SDK's own
DefaultAlipayClient.execute() and asserts that the SDK itself verified every response signature.

Usage: python python_sdk.py PATH/TO/agreements
Run by .ci/run inside a venv that has alipay-sdk-python==3.7.1411 installed.
"""

import http.server
import json
import os
import queue
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

# Real clients send their local clock; the gateway reads Beijing time (openapi-gateway.md §4.3).
os.environ["TZ"] = "Asia/Shanghai"
time.tzset()

from demo import RESULTS, case, start_server  # noqa: E402 - beside this script

import alipay.aop.api.DefaultAlipayClient as default_client_module  # noqa: E402
import rsa  # noqa: E402 - the SDK's RSA library
import alipay.aop.api.util.WebUtils as web_utils  # noqa: E402
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig  # noqa: E402
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient  # noqa: E402
from alipay.aop.api.domain.AlipayUserAgreementBatchQueryModel import AlipayUserAgreementBatchQueryModel  # noqa: E402
from alipay.aop.api.exception.Exception import ResponseException  # noqa: E402
from alipay.aop.api.domain.AlipayUserAgreementQueryModel import AlipayUserAgreementQueryModel  # noqa: E402
from alipay.aop.api.request.AlipayUserAgreementBatchQueryRequest import AlipayUserAgreementBatchQueryRequest  # noqa: E402
from alipay.aop.api.request.AlipayUserAgreementQueryRequest import AlipayUserAgreementQueryRequest  # noqa: E402
from alipay.aop.api.domain.AlipayUserAgreementUnsignModel import AlipayUserAgreementUnsignModel  # noqa: E402
from alipay.aop.api.request.AlipayUserAgreementUnsignRequest import AlipayUserAgreementUnsignRequest  # noqa: E402
from alipay.aop.api.util.SignatureUtils import get_sign_content, verify_with_rsa  # noqa: E402

try:
    import http.client as httplib
    import urllib.parse as urlparse
except ImportError:  # pragma: no cover
    raise

# --- Test-driver workaround: the SDK drops the port of the gateway URL (WebUtils.get_http_connection
# always connects to 80/443). We replace only that function, keeping its behaviour otherwise.
def get_http_connection_with_port(url, query_string, timeout):
    parsed = urlparse.urlparse(url)
    connection = httplib.HTTPConnection(host=parsed.hostname, port=parsed.port or 80, timeout=timeout)
    return parsed.path + "?" + query_string, connection


web_utils.get_http_connection = get_http_connection_with_port

# --- Count the SDK's own response verifications (DefaultAlipayClient imported verify_with_rsa).
VERIFICATIONS = []
_original_verify = default_client_module.verify_with_rsa


def counting_verify(public_key, message, sign):
    result = _original_verify(public_key, message, sign)
    VERIFICATIONS.append(bool(result))
    return result


default_client_module.verify_with_rsa = counting_verify


def read(path):
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def client(url, data_dir, sign_type="RSA2", charset="utf-8", app_key="app_private_key_pkcs1.b64",
           platform_key="platform_public_key_spki.b64"):
    config = AlipayClientConfig()
    config.server_url = url
    config.app_id = "2021000000000001"
    config.app_private_key = read(os.path.join(data_dir, app_key))
    config.alipay_public_key = read(os.path.join(data_dir, platform_key))
    config.sign_type = sign_type
    config.charset = charset
    return DefaultAlipayClient(alipay_client_config=config)


def batch_query(sdk, **fields):
    return execute(sdk, AlipayUserAgreementBatchQueryModel(), AlipayUserAgreementBatchQueryRequest(), fields)


def query(sdk, **fields):
    return execute(sdk, AlipayUserAgreementQueryModel(), AlipayUserAgreementQueryRequest(), fields)


def unsign(sdk, notify_url=None, **fields):
    request = AlipayUserAgreementUnsignRequest()
    if notify_url:
        request.notify_url = notify_url
    return execute(sdk, AlipayUserAgreementUnsignModel(), request, fields)


class Receiver:
    """A merchant's notification endpoint: records each form POST and answers `success`."""

    def __init__(self):
        self.received = queue.Queue()
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode("utf-8")
                received.put((self.headers.get("Content-Type"), dict(urllib.parse.parse_qsl(body))))
                self.send_response(200)
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"success")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def execute(sdk, model, request, fields):
    for name, value in fields.items():
        setattr(model, name, value)
    request.biz_model = model
    before = len(VERIFICATIONS)
    text = sdk.execute(request)
    verified = VERIFICATIONS[before:]
    assert verified == [True], f"the SDK did not verify exactly once: {verified}"
    return json.loads(text)




@case("batch.query success (RSA2, utf-8) verified by the SDK")
def success_rsa2(url, data_dir):
    node = batch_query(client(url, data_dir), personal_product_code="GENERAL_WITHHOLDING_P",
                       alipay_user_id="2088101122675263")
    assert node["code"] == "10000" and "sub_code" not in node, node
    numbers = [i["agreement_no"] for i in node["usage_agreement_info_list"]]
    assert numbers == ["20231120000000000002", "20240102000000000003", "20245920000000000001"], numbers
    assert node["usage_agreement_info_list"][0]["pricipal_type"] == "CUSTOMER"


@case("batch.query success (RSA, SHA1withRSA) verified by the SDK")
def success_rsa(url, data_dir):
    node = batch_query(client(url, data_dir, sign_type="RSA"), personal_product_code="GENERAL_WITHHOLDING_P",
                       alipay_logon_id="abx@alitest.com", sign_scene="INDUSTRY|DIGITAL_MEDIA")
    assert [i["agreement_no"] for i in node["usage_agreement_info_list"]] == ["20245920000000000001"], node


@case("batch.query in GBK verified by the SDK")
def success_gbk(url, data_dir):
    node = batch_query(client(url, data_dir, charset="GBK"), personal_product_code="GENERAL_WITHHOLDING_P",
                       alipay_user_id="2088999999999999")
    assert node["sub_code"] == "USER_NOT_EXIST_ERROR" and node["sub_msg"] == "用户信息不存在", node


@case("business error USER_NOT_EXIST_ERROR verified by the SDK")
def business_error(url, data_dir):
    node = batch_query(client(url, data_dir), personal_product_code="GENERAL_WITHHOLDING_P",
                       alipay_logon_id="nobody@alitest.com")
    assert node["code"] == "40004" and node["msg"] == "Business Failed", node
    assert node["sub_code"] == "USER_NOT_EXIST_ERROR", node


@case("bad request signature answered isv.invalid-signature, verified by the SDK")
def bad_signature(url, data_dir):
    # Sign with a key that is not the app's: the gateway must refuse, in a signed body.
    sdk = client(url, data_dir, app_key="platform_private_key_pkcs1.b64")
    node = batch_query(sdk, personal_product_code="GENERAL_WITHHOLDING_P", alipay_user_id="2088101122675263")
    assert node["code"] == "40002" and node["sub_code"] == "isv.invalid-signature", node


@case("agreement.query by number and USER_AGREEMENT_NOT_EXIST, verified by the SDK")
def agreement_query(url, data_dir):
    sdk = client(url, data_dir)
    node = query(sdk, agreement_no="20245920000000000001")
    assert node["code"] == "10000" and node["alipay_logon_id"] == "138****5678", node
    assert node["pricipal_type"] == "CARD" and node["status"] == "NORMAL", node
    node = query(sdk, personal_product_code="CYCLE_PAY_AUTH_P", sign_scene="INDUSTRY|DIGITAL_MEDIA",
                 external_agreement_no="AGR20240520000001", alipay_user_id="2088101122675263")
    assert node["sub_code"] == "USER_AGREEMENT_NOT_EXIST" and node["sub_msg"] == "用户协议不存在", node


@case("unsign verified by the SDK; its notification verified with the SDK's verify_with_rsa")
def agreement_unsign(url, data_dir):
    sdk = client(url, data_dir)
    receiver = Receiver()
    node = unsign(sdk, notify_url=receiver.url, agreement_no="20240102000000000003", operate_type="confirm",
                  extend_params='{"reason":"interop"}')
    assert node["code"] == "10000" and "sub_code" not in node, node
    content_type, params = receiver.received.get(timeout=15)
    assert content_type == "application/x-www-form-urlencoded; charset=utf-8", content_type
    assert params["notify_type"] == "dut_user_unsign" and params["status"] == "UNSIGN", params
    assert params["agreement_no"] == "20240102000000000003" and params["sign_type"] == "RSA2", params
    sign = params.pop("sign")
    params.pop("sign_type")
    message = get_sign_content(params).encode("utf-8")
    platform_public = read(os.path.join(data_dir, "platform_public_key_spki.b64"))
    assert verify_with_rsa(platform_public, message, sign), "the notification signature does not verify"
    try:  # the check can fail: a changed field does not verify
        verify_with_rsa(platform_public, message.replace(b"UNSIGN", b"NORMAL"), sign)
        raise AssertionError("a tampered notification verified")
    except rsa.VerificationError:
        pass
    # Gone for queries; a retried unsign still succeeds.
    node = query(sdk, agreement_no="20240102000000000003")
    assert node["sub_code"] == "USER_AGREEMENT_NOT_EXIST", node
    node = unsign(sdk, agreement_no="20240102000000000003")
    assert node["code"] == "10000", node
    node = unsign(sdk, agreement_no="20240301000000000008")
    assert node["sub_code"] == "USER_AGREEMENT_NOT_EXIST", node
    receiver.server.shutdown()


@case("a client holding the wrong platform key rejects our response")
def wrong_platform_key(url, data_dir):
    sdk = client(url, data_dir, platform_key="app_public_key_spki.b64")
    model = AlipayUserAgreementBatchQueryModel()
    model.personal_product_code = "GENERAL_WITHHOLDING_P"
    model.alipay_user_id = "2088101122675263"
    request = AlipayUserAgreementBatchQueryRequest()
    request.biz_model = model
    try:
        sdk.execute(request)
    except ResponseException as e:
        assert "verify failed" in str(e), e
        return
    raise AssertionError("the SDK accepted a response signed by another key")


@case("AES: the SDK's own AES fails on Python 3 (SDK bug); its verifier accepts our encrypted answer")
def aes(url, data_dir):
    import base64
    from Crypto.Cipher import AES  # the SDK's own dependency (pycryptodome)
    from alipay.aop.api.util.SignatureUtils import sign_with_rsa2

    key = read(os.path.join(data_dir, "app_aes_key.txt"))
    sdk = client(url, data_dir)
    config = sdk._DefaultAlipayClient__config
    config.encrypt_type = "AES"
    config.encrypt_key = key
    model = AlipayUserAgreementBatchQueryModel()
    model.personal_product_code = "GENERAL_WITHHOLDING_P"
    model.alipay_user_id = "2088101122675263"
    request = AlipayUserAgreementBatchQueryRequest()
    request.biz_model = model
    try:
        sdk.execute(request)
        raise AssertionError("the SDK's AES worked: make this test use it")
    except TypeError:
        pass  # EncryptUtils hands str to pycryptodome: it cannot encrypt on Python 3
    # The request as the SDK would send it (AES-CBC, zero IV, PKCS#7, base64; sign over it).
    plain = json.dumps({"personal_product_code": "GENERAL_WITHHOLDING_P",
                        "alipay_user_id": "2088101122675263"}).encode("utf-8")
    pad = 16 - len(plain) % 16
    cipher = AES.new(base64.b64decode(key), AES.MODE_CBC, bytes(16))
    sealed = base64.b64encode(cipher.encrypt(plain + bytes([pad]) * pad)).decode("ascii")
    params = {"app_id": config.app_id, "method": "alipay.user.agreement.batch.query", "charset": "utf-8",
              "sign_type": "RSA2", "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"), "version": "1.0",
              "encrypt_type": "AES", "biz_content": sealed}
    params["sign"] = sign_with_rsa2(config.app_private_key, get_sign_content(params), "utf-8")
    body = urllib.parse.urlencode(params).encode("ascii")
    with urllib.request.urlopen(urllib.request.Request(url, data=body)) as response:
        raw = response.read()
    before = len(VERIFICATIONS)
    try:
        sdk._DefaultAlipayClient__parse_response(raw)
        raise AssertionError("the SDK's AES decryption worked: make this test use it")
    except TypeError:
        pass  # verified first, then the same str-to-C bug in decrypt_content
    assert VERIFICATIONS[before:] == [True], f"the SDK did not verify our encrypted answer: {raw!r}"
    node = json.loads(raw)["alipay_user_agreement_batch_query_response"]
    opened = AES.new(base64.b64decode(key), AES.MODE_CBC, bytes(16)).decrypt(base64.b64decode(node))
    answer = json.loads(opened[:-opened[-1]].decode("utf-8"))
    numbers = [i["agreement_no"] for i in answer["usage_agreement_info_list"]]
    assert answer["code"] == "10000" and "20245920000000000001" in numbers, answer


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "data")
        process, url = start_server(binary, data_dir)
        try:
            for test in (success_rsa2, success_rsa, success_gbk, business_error, bad_signature, agreement_query,
                         agreement_unsign, wrong_platform_key, aes):
                test(url, data_dir)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
        graceful = code == 0
        RESULTS.append(graceful)
        print(("ok  " if graceful else "FAIL") + f" server stopped on SIGTERM with exit code {code}")
    passed, failed = RESULTS.count(True), RESULTS.count(False)
    print(f"interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
