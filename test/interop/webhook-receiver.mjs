// A webhook endpoint that checks every delivery with the Standard Webhooks
// reference library: it prints one JSON line per request (verified or
// not) and answers 204, or 401 when the signature does not verify.
import http from 'node:http';
import { Webhook } from 'standardwebhooks';

const wh = new Webhook(process.env.SECRET);
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    try {
      const ev = wh.verify(body, req.headers);
      console.log(JSON.stringify({ verified: true, type: ev.type, id: ev.id, webhookId: req.headers['webhook-id'] }));
      res.writeHead(204);
    } catch (e) {
      console.log(JSON.stringify({ verified: false, error: String(e.message) }));
      res.writeHead(401);
    }
    res.end();
  });
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ listening: server.address().port })));
