// The official npm alipay-sdk (4.x) as a merchant's server uses it around the signing page.
// Driven by the browser tests (crates/server/tests/api/browser.rs), with NODE_PATH naming a
// node_modules folder that has alipay-sdk:
//
//   node sdk_page.mjs link GATEWAY APP_ID APP_KEY_PKCS1_PEM_FILE PLATFORM_KEY_PEM_FILE GET|POST BIZ_JSON RETURN_URL NOTIFY_URL
//       pageExecute('alipay.user.agreement.page.sign', …): prints the GET URL or the POST form HTML.
//   node sdk_page.mjs verify APP_KEY_PKCS1_PEM_FILE PLATFORM_KEY_PEM_FILE < FORM_BODY
//       checkNotifySignV2 of a notification's form parameters: exit 0 and "verified", or exit 1.
//
// Requests are stamped with the local clock: run with TZ=Asia/Shanghai.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { AlipaySdk } = require('alipay-sdk');

const [command, ...args] = process.argv.slice(2);

function sdk(gateway, appId, appKey, platformKey) {
  return new AlipaySdk({
    appId,
    gateway,
    keyType: 'PKCS1',
    privateKey: readFileSync(appKey, 'ascii'),
    alipayPublicKey: readFileSync(platformKey, 'ascii'),
  });
}

if (command === 'link') {
  const [gateway, appId, appKey, platformKey, method, biz, returnUrl, notifyUrl] = args;
  const out = sdk(gateway, appId, appKey, platformKey).pageExecute(
    'alipay.user.agreement.page.sign',
    method,
    { bizContent: JSON.parse(biz), returnUrl, notifyUrl },
  );
  console.log(out);
} else if (command === 'verify') {
  const [appKey, platformKey] = args;
  const body = readFileSync(0, 'utf8').trim();
  const params = Object.fromEntries(new URLSearchParams(body));
  if (!sdk('http://127.0.0.1/gateway.do', '0', appKey, platformKey).checkNotifySignV2(params)) {
    console.error('the SDK refused the signature');
    process.exit(1);
  }
  console.log('verified');
} else {
  console.error(`unknown command ${command}`);
  process.exit(2);
}
