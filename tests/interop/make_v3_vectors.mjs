// Records what the npm alipay-sdk (4.x) puts on the wire for OpenAPI v3 requests, signed with the
// fixture app key, into tests/fixtures/sdk-vectors/v3-requests.json. Nothing is sent: the SDK's
// HTTP call is replaced by a recorder (the SDK then fails on the fake answer, as expected).
//
//   NODE_PATH=…/node_modules node make_v3_vectors.mjs > tests/fixtures/sdk-vectors/v3-requests.json

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { AlipaySdk } = require('alipay-sdk');
const here = dirname(fileURLToPath(import.meta.url));
const keys = join(here, '..', 'fixtures', 'openapi-vectors', 'keys');

const urllibModule = require(require.resolve('urllib', { paths: [require.resolve('alipay-sdk')] }));
const urllib = urllibModule.__esModule ? urllibModule.default : urllibModule;
let recorded;
urllib.request = async (url, options) => {
  const target = new URL(url);
  recorded = {
    http_method: options.method,
    target: `${target.pathname}${target.search}`,
    body: typeof options.content === 'string' ? options.content : '',
    authorization: options.headers.authorization,
    app_auth_token: options.headers['alipay-app-auth-token'] ?? null,
  };
  return { status: 599, headers: {}, data: '{"code":"x","message":"recorded"}' };
};

const sdk = new AlipaySdk({
  appId: '2021000000000001',
  endpoint: 'http://127.0.0.1:8080',
  keyType: 'PKCS1',
  privateKey: readFileSync(join(keys, 'app_private_key_pkcs1.pem'), 'ascii'),
  alipayPublicKey: readFileSync(join(keys, 'gateway_public_key_spki.pem'), 'ascii'),
});

const cases = [
  ['GET', '/v3/alipay/user/agreement/query', { query: { agreement_no: '20245920000000000001', memo: 'a b+c/用户' } }],
  ['POST', '/v3/alipay/user/agreement/unsign', { body: { agreement_no: '20245920000000000001', extend_params: '{"reason":"用户"}' } }],
  ['POST', '/v3/alipay/user/agreement/executionplan/modify', {
    body: { agreement_no: '20245920000000000001', deduct_time: '2024-06-10', memo: '改期' },
    appAuthToken: '202405BBvideo00000000000000000000001',
  }],
];
const vectors = [];
for (const [method, path, options] of cases) {
  recorded = undefined;
  try {
    await sdk.curl(method, path, options);
  } catch {
    // the recorder's answer is refused: expected
  }
  vectors.push(recorded);
}
console.log(JSON.stringify({
  _meta: {
    note: 'Recorded from alipay-sdk (npm) 4.14.0 curl() with the fixture app key (tests/fixtures/openapi-vectors/keys), nothing sent; made by tests/interop/make_v3_vectors.mjs',
  },
  vectors,
}, null, 2));
