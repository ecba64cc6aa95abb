"""The official Python SDK (PyPI alipay-sdk-python 3.7.1411) as a merchant's server uses it around
the signing page. Driven by the browser tests (crates/server/tests/api/browser.rs):

  sdk_page.py link GATEWAY APP_ID APP_KEY_B64_FILE GET|POST BIZ_JSON RETURN_URL NOTIFY_URL
      page_execute(AlipayUserAgreementPageSignRequest): prints the GET URL, or the POST form HTML.
  sdk_page.py verify PLATFORM_PUBLIC_KEY_B64_FILE < FORM_BODY
      the SDK's own signature check of a notification (or a return address's query): every
      parameter but sign and sign_type, sorted (get_sign_content), verify_with_rsa. Exit 0 and
      "verified", or exit 1.
  sdk_page.py query GATEWAY APP_ID APP_KEY_B64_FILE PLATFORM_PUBLIC_KEY_B64_FILE BATCH_BIZ QUERY_BIZ
      DefaultAlipayClient.execute() of batch.query and query (the SDK verifies each response);
      prints {"batch": …, "query": …} as JSON.

Requests are stamped with the local clock: run with TZ=Asia/Shanghai.
"""

import http.client
import json
import sys
import urllib.parse

import alipay.aop.api.util.WebUtils as web_utils
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.request.AlipayUserAgreementBatchQueryRequest import AlipayUserAgreementBatchQueryRequest
from alipay.aop.api.request.AlipayUserAgreementPageSignRequest import AlipayUserAgreementPageSignRequest
from alipay.aop.api.request.AlipayUserAgreementQueryRequest import AlipayUserAgreementQueryRequest
from alipay.aop.api.util.SignatureUtils import get_sign_content, verify_with_rsa


# Test-driver workaround (as in python_sdk.py): the SDK drops the gateway URL's port.
def get_http_connection_with_port(url, query_string, timeout):
    parsed = urllib.parse.urlparse(url)
    connection = http.client.HTTPConnection(host=parsed.hostname, port=parsed.port or 80, timeout=timeout)
    return parsed.path + "?" + query_string, connection


web_utils.get_http_connection = get_http_connection_with_port


def read(path):
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def client(gateway, app_id, app_key, platform_key=None):
    config = AlipayClientConfig()
    config.server_url = gateway
    config.app_id = app_id
    config.app_private_key = read(app_key)
    if platform_key:
        config.alipay_public_key = read(platform_key)
    return DefaultAlipayClient(alipay_client_config=config)


def link(gateway, app_id, app_key, http_method, biz, return_url, notify_url):
    request = AlipayUserAgreementPageSignRequest()
    request.biz_content = json.loads(biz)
    request.return_url = return_url
    request.notify_url = notify_url
    print(client(gateway, app_id, app_key).page_execute(request, http_method=http_method))


def verify(platform_key):
    params = dict(urllib.parse.parse_qsl(sys.stdin.read().strip(), keep_blank_values=True))
    sign = params.pop("sign")
    params.pop("sign_type", None)
    content = get_sign_content(params)
    if not verify_with_rsa(read(platform_key), content.encode("utf-8"), sign):
        sys.exit("the SDK refused the signature")
    print("verified")


def query(gateway, app_id, app_key, platform_key, batch_biz, query_biz):
    sdk = client(gateway, app_id, app_key, platform_key)
    answers = {}
    for name, request, biz in [
        ("batch", AlipayUserAgreementBatchQueryRequest(), batch_biz),
        ("query", AlipayUserAgreementQueryRequest(), query_biz),
    ]:
        request.biz_content = json.loads(biz)
        answers[name] = json.loads(sdk.execute(request))
    print(json.dumps(answers, ensure_ascii=False))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"link": link, "verify": verify, "query": query}[command](*args)
