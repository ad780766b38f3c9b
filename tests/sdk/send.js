// send.js -- sends through warmupd with SendGrid's official Node.js SDK,
// changing nothing but the base URL, and prints what the SDK saw as JSON.
//   node send.js BASE_URL TOKEN
'use strict';
const client = require('@sendgrid/client');
const mail = require('@sendgrid/mail');

const [baseUrl, token] = process.argv.slice(2);
client.setApiKey(token);
client.setDefaultRequest('baseUrl', baseUrl);
mail.setClient(client);

async function attempt(msg, multiple) {
  try {
    const [res] = multiple ? await mail.sendMultiple(msg) : await mail.send(msg);
    return { status: res.statusCode, messageId: res.headers['x-message-id'] || null };
  } catch (err) {
    return { status: err.code, errors: err.response ? err.response.body.errors : String(err) };
  }
}

(async () => {
  const out = {};
  out.single = await attempt({
    to: 'taro@gmail.com', from: { email: 'news@shop.example.jp', name: 'ショップ' },
    subject: '冬のセール', text: 'こんにちは', html: '<p>こんにちは</p>',
    categories: ['newsletter'], customArgs: { campaign: 'winter' },
  });
  out.multiple = await attempt({
    to: ['a@yahoo.co.jp', 'b@docomo.ne.jp', 'c@outlook.jp'], from: 'news@shop.example.jp',
    subject: 'Sale', text: 'Hello',
  }, true);
  out.invalid = await attempt({ to: 'x@gmail.com', from: 'news@shop.example.jp', text: 'no subject' });
  // setApiKey() restores SendGrid's own base URL, so set ours again after it.
  client.setApiKey('wrong-token');
  client.setDefaultRequest('baseUrl', baseUrl);
  out.unauthorized = await attempt({ to: 'x@gmail.com', from: 'news@shop.example.jp', subject: 's', text: 't' });
  console.log(JSON.stringify(out));
})();
