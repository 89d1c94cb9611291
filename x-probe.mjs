import tls from 'node:tls'; import net from 'node:net'; import {execFileSync} from 'node:child_process';
execFileSync('openssl',['req','-x509','-newkey','ec','-pkeyopt','ec_paramgen_curve:prime256v1','-nodes','-keyout','/tmp/k.pem','-out','/tmp/c.pem','-subj','/CN=localhost','-addext','subjectAltName=DNS:localhost'],{stdio:'ignore'});
const ctx = tls.createSecureContext({key: execFileSync('cat',['/tmp/k.pem']), cert: execFileSync('cat',['/tmp/c.pem'])});
const mode = process.argv[2];
const srv = net.createServer((s)=>{
  s.once('data', (d)=>{
    s.pause();
    if (mode==='unshift') s.unshift(d);
    const t = new tls.TLSSocket(s, {isServer:true, secureContext: ctx});
    if (mode==='receive') t._handle.receive(d);
    t.on('secure', ()=> console.log('server secure'));
    t.on('data', (x)=> { t.end('pong:'+x); });
    t.on('error', e=>console.log('srv err', e.message));
  });
}).listen(0, ()=>{
  const c = tls.connect({port: srv.address().port, servername:'localhost', ca: execFileSync('cat',['/tmp/c.pem'])}, ()=>{ c.write('ping'); });
  c.on('data', d=>{console.log('client got', String(d)); process.exit(0)});
  c.on('error', e=>console.log('cli err', e.message));
  setTimeout(()=>{console.log('timeout'); process.exit(1)}, 2000);
});
