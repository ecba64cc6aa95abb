// Interoperability: the official npm alipay-sdk (4.x) against our server, unmodified.
//
// Starts `agreements demo` on a free port in a temporary folder, then drives the SDK's own
// `exec()` (OpenAPI v2), with and without content encryption (`needEncrypt`, the demo app's AES
// key as the SDK's `encryptKey`), in public-key mode and in certificate mode (the demo's
// `cert/` files as `appCertPath`, `alipayPublicCertPath`, `alipayRootCertPath`); and OpenAPI v3
// with the SDK's `curl()` (its own Authorization header, its own check of our signed response
// headers), plain, encrypted and in certificate mode.
//
//   NODE_PATH=…/node_modules node node_sdk.mjs PATH/TO/agreements
//
// Run by .ci/run. Requests are stamped with the local clock, so this script runs in Beijing time.

import { spawn } from 'node:child_process';
import { createVerify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

process.env.TZ = 'Asia/Shanghai';
const require = createRequire(import.meta.url);
const { AlipaySdk } = require('alipay-sdk');

const APP_ID = '2021000000000001';
const BATCH = 'alipay.user.agreement.batch.query';
const RESULTS = [];

async function startServer(binary, dataDir) {
  const child = spawn(binary, ['demo', '--data-dir', dataDir, '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const lines = createInterface({ input: child.stdout });
  const timer = setTimeout(() => child.kill(), 60_000);
  for await (const line of lines) {
    const match = line.match(/serving (http:\/\/\S+\/gateway\.do)/);
    if (match) {
      clearTimeout(timer);
      return { child, url: match[1] };
    }
  }
  throw new Error('the demo server did not start');
}

function read(dir, name) {
  return readFileSync(join(dir, name), 'ascii').trim();
}

function certMode(dir) {
  return {
    appCertPath: join(dir, 'cert', `appCertPublicKey_${APP_ID}.crt`),
    alipayPublicCertPath: join(dir, 'cert', 'alipayCertPublicKey_RSA2.crt'),
    alipayRootCertPath: join(dir, 'cert', 'alipayRootCert.crt'),
    alipayPublicKey: undefined,
  };
}

function sdk(url, dir, extra = {}) {
  return new AlipaySdk({
    appId: APP_ID,
    gateway: url,
    endpoint: url.replace(/\/gateway\.do$/, ''),
    keyType: 'PKCS1',
    privateKey: read(dir, 'app_private_key_pkcs1.pem'),
    alipayPublicKey: read(dir, 'platform_public_key_spki.pem'),
    ...extra,
  });
}

async function check(name, fn) {
  try {
    await fn();
    RESULTS.push(true);
    console.log(`ok   ${name}`);
  } catch (e) {
    RESULTS.push(false);
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** Captures the raw HTTP bodies the SDK receives (its own requests, unchanged). */
async function withBodies(fn) {
  const original = globalThis.__agreementsBodies;
  const bodies = [];
  globalThis.__agreementsBodies = bodies;
  try {
    return [await fn(), bodies];
  } finally {
    globalThis.__agreementsBodies = original;
  }
}

/**
 * The SDK's `checkResponseSign` finds the signed text by searching for `{…}`, so it cannot verify
 * an encrypted (string) node — a limit of the SDK (its `exec` skips verification unless asked).
 * For encrypted answers this verifies the signature over the exact quoted node instead, with the
 * same algorithm and key the SDK uses.
 */
function verifySealed(raw, method, platformKey) {
  const node = `${method.replaceAll('.', '_')}_response`;
  const match = raw.match(new RegExp(`^\\{"${node}":("[A-Za-z0-9+/=]+"),"sign":"([^"]+)"\\}$`));
  assert(match, `not an encrypted answer: ${raw}`);
  const verifier = createVerify('RSA-SHA256');
  verifier.update(match[1], 'utf8');
  assert(verifier.verify(platformKey, match[2], 'base64'), 'the encrypted node does not verify');
}

async function main() {
  const binary = process.argv[2];
  const tmp = mkdtempSync(join(tmpdir(), 'agreements-node-'));
  const dir = join(tmp, 'data');
  const { child, url } = await startServer(binary, dir);
  // Record the raw bodies (the SDK requests through urllib, which uses undici's fetch layer).
  // The object the SDK calls `request` on (TypeScript's default-import interop).
  const urllibModule = require(require.resolve('urllib', { paths: [require.resolve('alipay-sdk')] }));
  const urllib = urllibModule.__esModule ? urllibModule.default : urllibModule;
  const request = urllib.request.bind(urllib);
  urllib.request = async (...args) => {
    const response = await request(...args);
    globalThis.__agreementsBodies?.push(response.data);
    return response;
  };
  const platformKey = read(dir, 'platform_public_key_spki.pem');
  const aesKey = read(dir, 'app_aes_key.txt');
  try {
    await check('v2 exec batch.query, verified by the SDK (validateSign)', async () => {
      const result = await sdk(url, dir).exec(BATCH, {
        bizContent: { personal_product_code: 'GENERAL_WITHHOLDING_P', alipay_user_id: '2088101122675263' },
      }, { validateSign: true });
      assert(result.code === '10000', JSON.stringify(result));
      assert(result.usageAgreementInfoList.length === 3, JSON.stringify(result));
    });

    await check('v2 exec business error, verified by the SDK (validateSign)', async () => {
      const result = await sdk(url, dir).exec(BATCH, {
        bizContent: { personal_product_code: 'GENERAL_WITHHOLDING_P', alipay_user_id: '2088999999999999' },
      }, { validateSign: true });
      assert(result.subCode === 'USER_NOT_EXIST_ERROR', JSON.stringify(result));
    });

    await check('v2 exec with AES (needEncrypt): the SDK encrypts, decrypts our encrypted answer', async () => {
      const [result, bodies] = await withBodies(() => sdk(url, dir, { encryptKey: aesKey }).exec(BATCH, {
        bizContent: { personal_product_code: 'GENERAL_WITHHOLDING_P', alipay_user_id: '2088101122675263' },
        needEncrypt: true,
      }));
      assert(result.code === '10000', JSON.stringify(result));
      assert(result.usageAgreementInfoList.some((a) => a.agreementNo === '20245920000000000001'), JSON.stringify(result));
      verifySealed(bodies[0], BATCH, platformKey);
    });

    await check('v2 exec with AES: a business error comes back encrypted and decrypts', async () => {
      const [result, bodies] = await withBodies(() => sdk(url, dir, { encryptKey: aesKey }).exec(
        'alipay.user.agreement.query', { bizContent: { agreement_no: '20990101000000000000' }, needEncrypt: true },
      ));
      assert(result.subCode === 'USER_AGREEMENT_NOT_EXIST' && result.subMsg === '用户协议不存在', JSON.stringify(result));
      verifySealed(bodies[0], 'alipay.user.agreement.query', platformKey);
    });

    await check('v2 exec with the wrong AES key: isv.invalid-encrypt in plain text, verified by the SDK', async () => {
      const result = await sdk(url, dir, { encryptKey: 'DwAOAA0ADAALAAoACQAIAA==' }).exec(BATCH, {
        bizContent: { personal_product_code: 'GENERAL_WITHHOLDING_P', alipay_user_id: '2088101122675263' },
        needEncrypt: true,
      }, { validateSign: true });
      assert(result.code === '40002' && result.subCode === 'isv.invalid-encrypt', JSON.stringify(result));
    });

    await check('v2 exec in certificate mode: the SDK sends its SNs and verifies our answer', async () => {
      const client = sdk(url, dir, certMode(dir));
      const [result, bodies] = await withBodies(() => client.exec(BATCH, {
        bizContent: { personal_product_code: 'GENERAL_WITHHOLDING_P', alipay_user_id: '2088101122675263' },
      }, { validateSign: true }));
      assert(result.code === '10000', JSON.stringify(result));
      // The answer names the platform certificate the SDK holds (by the SDK's own SN rule).
      const sn = bodies[0].match(/,"alipay_cert_sn":"([0-9a-f]{32})","sign":"/);
      assert(sn, `no alipay_cert_sn: ${bodies[0]}`);
      assert(sn[1] === client.config.alipayCertSn, `${sn[1]} is not the SDK's ${client.config.alipayCertSn}`);
    });

    await check('v2 exec in certificate mode with AES', async () => {
      const [result, bodies] = await withBodies(() => sdk(url, dir, { ...certMode(dir), encryptKey: aesKey }).exec(
        'alipay.user.agreement.query', { bizContent: { agreement_no: '20245920000000000001' }, needEncrypt: true },
      ));
      assert(result.code === '10000' && result.agreementNo === '20245920000000000001', JSON.stringify(result));
      const sealed = bodies[0].match(/^\{"alipay_user_agreement_query_response":("[A-Za-z0-9+/=]+"),"alipay_cert_sn":"[0-9a-f]{32}","sign":"([^"]+)"\}$/);
      assert(sealed, `not an encrypted cert-mode answer: ${bodies[0]}`);
      const verifier = createVerify('RSA-SHA256');
      verifier.update(sealed[1], 'utf8');
      assert(verifier.verify(platformKey, sealed[2], 'base64'), 'the encrypted node does not verify');
    });

    await check('certificate mode with an app certificate the platform never issued: isv.app-cert-not-exist', async () => {
      const client = sdk(url, dir, certMode(dir));
      client.config.appCertSn = '0123456789abcdef0123456789abcdef';
      const result = await client.exec(BATCH, {
        bizContent: { personal_product_code: 'GENERAL_WITHHOLDING_P', alipay_user_id: '2088101122675263' },
      }, { validateSign: true });
      assert(result.code === '40002' && result.subCode === 'isv.app-cert-not-exist', JSON.stringify(result));
    });

    await check('v3 GET query: the SDK signs its Authorization and verifies our response headers', async () => {
      const result = await sdk(url, dir).curl('GET', '/v3/alipay/user/agreement/query', {
        query: { agreement_no: '20245920000000000001' },
      });
      assert(result.responseHttpStatus === 200, JSON.stringify(result));
      assert(result.data.agreement_no === '20245920000000000001' && result.data.status === 'NORMAL', JSON.stringify(result.data));
      assert(!('code' in result.data), 'v3 success bodies have no code');
    });

    await check('v3 business error: HTTP 400 {code, message, links}', async () => {
      try {
        await sdk(url, dir).curl('GET', '/v3/alipay/user/agreement/query', { query: { agreement_no: '20990101000000000000' } });
      } catch (e) {
        assert(e.responseHttpStatus === 400 && e.code === 'USER_AGREEMENT_NOT_EXIST', `${e.code} ${e.responseHttpStatus}`);
        assert(e.message.startsWith('用户协议不存在') && e.links?.length === 1, `${e.message} ${JSON.stringify(e.links)}`);
        return;
      }
      throw new Error('no error');
    });

    await check('v3 path that does not exist: HTTP 400 invalid-method', async () => {
      try {
        await sdk(url, dir).curl('POST', '/v3/alipay/user/agreement/batch/query', { body: {} });
      } catch (e) {
        assert(e.responseHttpStatus === 400 && e.code === 'invalid-method', `${e.code} ${e.responseHttpStatus}`);
        return;
      }
      throw new Error('no error');
    });

    await check('v3 POST unsign with AES (needEncrypt): encrypted both ways, verified by the SDK', async () => {
      const result = await sdk(url, dir, { encryptKey: aesKey }).curl('POST', '/v3/alipay/user/agreement/unsign', {
        body: { agreement_no: '20240102000000000003' },
        needEncrypt: true,
      });
      assert(result.responseHttpStatus === 200, JSON.stringify(result));
      assert(JSON.stringify(result.data) === '{}', JSON.stringify(result.data));
    });

    await check('v3 in certificate mode: alipay-sn names the SDK\'s platform certificate', async () => {
      const client = sdk(url, dir, certMode(dir));
      const result = await client.curl('GET', '/v3/alipay/user/agreement/query', {
        query: { agreement_no: '20245920000000000001' },
      });
      assert(result.data.agreement_no === '20245920000000000001', JSON.stringify(result.data));
    });

    await check('v3 in certificate mode with AES: POST unsign encrypted both ways', async () => {
      const result = await sdk(url, dir, { ...certMode(dir), encryptKey: aesKey }).curl(
        'POST', '/v3/alipay/user/agreement/unsign', { body: { agreement_no: '20231120000000000002' }, needEncrypt: true },
      );
      assert(result.responseHttpStatus === 200 && JSON.stringify(result.data) === '{}', JSON.stringify(result));
    });

    await check('v3 with a wrong app key: HTTP 400 invalid-signature', async () => {
      const client = sdk(url, dir, { privateKey: read(dir, 'platform_private_key_pkcs1.pem') });
      try {
        await client.curl('GET', '/v3/alipay/user/agreement/query', { query: { agreement_no: '20245920000000000001' } });
      } catch (e) {
        assert(e.responseHttpStatus === 400 && e.code === 'invalid-signature', `${e.code} ${e.responseHttpStatus}`);
        return;
      }
      throw new Error('no error');
    });
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.on('exit', resolve));
    rmSync(tmp, { recursive: true, force: true });
  }
  const passed = RESULTS.filter(Boolean).length;
  const failed = RESULTS.length - passed;
  console.log(`node interop: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

await main();
