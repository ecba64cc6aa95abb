#!/usr/bin/env python3
"""Seeds each fuzz target's corpus from the repository's vectors (fuzz/corpus/<target>/).

Usage: python3 fuzz/seed.py [path/to/agreements]   (the binary makes import-file seeds with
generate-world; without it those seeds are skipped). Seeds are named by content hash, so running
it again adds nothing twice; the fuzzer's own findings stay beside them.
"""

import hashlib
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "fixtures" / "openapi-vectors"
SDK_VECTORS = ROOT / "tests" / "fixtures" / "sdk-vectors"
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def wire_bytes(text, charset):
    # The vectors keep GBK bodies as percent-encoded ASCII; anything else is UTF-8 text.
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        return text.encode("gbk" if charset.lower() in ("gbk", "gb2312") else "utf-8")


def requests():
    vectors = json.loads((VECTORS / "request-vectors.json").read_text())["vectors"]
    for vector in vectors:
        for variant in vector["variants"]:
            wire = variant["wire"]
            charset = variant.get("charset", "utf-8")
            parts = [
                wire.get("content_type") or "",
                wire.get("query_string") or "",
            ]
            head = "\n".join(parts).encode("ascii") + b"\n"
            put("gateway_request", head + wire_bytes(wire.get("body") or "", charset))
            biz = variant["signed_params"].get("biz_content")
            if biz:
                put("biz_content", biz)
    v3 = json.loads((SDK_VECTORS / "v3-requests.json").read_text())["vectors"]
    for vector in v3:
        text = "\n".join(
            [vector["http_method"], vector["target"], vector["authorization"], vector["body"]]
        )
        put("gateway_request", text)
        if vector["body"].startswith("{"):
            put("biz_content", vector["body"])


def biz_contents():
    # Each method's fields, from the product page and the sign-flow spec.
    for biz in [
        {"alipay_logon_id": "abx@alitest.com", "personal_product_code": "GENERAL_WITHHOLDING_P",
         "third_party_type": "MERCHANT", "sign_scene": "INDUSTRY|DIGITAL_MEDIA"},
        {"agreement_no": "20245920000000000001", "extend_params": "{\"UNSIGN_ERROR_CODE\":\"USER_OWE_MONEY\"}"},
        {"personal_product_code": "CYCLE_PAY_AUTH_P", "sign_scene": "INDUSTRY|MEDICAL",
         "external_agreement_no": "ext-1", "access_params": {"channel": "ALIPAYAPP"},
         "period_rule_params": {"period_type": "DAY", "period": 7, "execute_time": "2026-12-10",
                                "single_amount": "10.00", "total_amount": "600", "total_payments": 12}},
        {"agreement_no": "20245920000000000001", "deduct_time": "2026-12-12", "memo": "move"},
    ]:
        put("biz_content", json.dumps(biz, ensure_ascii=False))


def keys():
    for path in sorted((VECTORS / "keys").iterdir()) + sorted((VECTORS / "certs").iterdir()):
        put("keys_and_signatures", path.read_bytes())
    for vector in json.loads((VECTORS / "request-vectors.json").read_text())["vectors"]:
        for variant in vector["variants"]:
            put("keys_and_signatures", variant["sign"])
    aes = json.loads((VECTORS / "aes-vector.json").read_text())
    for value in json.dumps(aes).split('"'):
        if len(value) >= 24 and value.replace("+", "").replace("/", "").replace("=", "").isalnum():
            put("keys_and_signatures", value)


# Kind::ALL's order (crates/store/src/load.rs).
KINDS = ["groups", "merchants", "products", "contracts", "apps", "accounts", "logon_ids",
         "open_ids", "agreements"]


def import_files(binary):
    if binary is None:
        return
    with tempfile.TemporaryDirectory() as out:
        for fmt, flag in [("jsonl", 0x00), ("csv", 0x40)]:
            folder = pathlib.Path(out) / fmt
            subprocess.run(
                [binary, "generate-world", "--persons", "3", "--out", str(folder), "--format", fmt],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for path in sorted(folder.iterdir()):
                stem = path.name.split(".")[0]
                if stem not in KINDS:
                    continue
                # The fuzz target's first byte picks the kind (Kind::ALL's order) and format.
                selector = KINDS.index(stem) | flag
                put("import_lines", bytes([selector]) + path.read_bytes()[:4096])


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else None
    requests()
    biz_contents()
    keys()
    import_files(binary)
    for folder in sorted(CORPUS.iterdir()):
        print(f"{folder.name}: {sum(1 for _ in folder.iterdir())} seeds")


if __name__ == "__main__":
    main()
