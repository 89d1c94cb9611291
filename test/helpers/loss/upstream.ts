/**
 * The upstream of a packet-loss run, started inside the namespace: every GET gets the same
 * JSON document of about 7 KB (as the experiment), with a Content-Length.
 * argv: port [certFile keyFile] (with them it speaks HTTPS). Prints `ready` once listening.
 */
import { readFileSync } from 'node:fs';
import { createServer, type RequestListener } from 'node:http';
import { createServer as createTlsServer } from 'node:https';

const [, , port, certFile, keyFile] = process.argv;
const items = Array.from({ length: 70 }, (_, i) => ({
  id: i,
  name: `item-${i}`,
  tags: ['a', 'b'],
}));
const body = Buffer.from(JSON.stringify({ items, pad: 'x'.repeat(3900) }));

const serve: RequestListener = (req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
};
const server =
  certFile === undefined || keyFile === undefined
    ? createServer(serve)
    : createTlsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, serve);
server.keepAliveTimeout = 30_000;
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`ready ${body.length}\n`));
