/**
 * The upstream of a packet-loss run, started inside the namespace: every GET gets the same
 * JSON document of about 7 KB (as the experiment), with a Content-Length.
 * argv: port. Prints `ready` once listening.
 */
import { createServer } from 'node:http';

const port = Number(process.argv[2]);
const items = Array.from({ length: 70 }, (_, i) => ({
  id: i,
  name: `item-${i}`,
  tags: ['a', 'b'],
}));
const body = Buffer.from(JSON.stringify({ items, pad: 'x'.repeat(3900) }));

const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 30_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`ready ${body.length}\n`));
