#!/usr/bin/env python3
"""Memory per idle HTTPS keep-alive connection: ferry serve against nginx.

Starts each server on a fresh root with one certificate (made with `openssl req`),
opens N TLS connections, has each fetch a 4 KiB file once (so every connection has
finished its handshake and served a request), leaves them idle, and reads the server's
RssAnon (/proc/PID/status) before and after. Prints bytes per idle connection.

    scripts/tls-idle-memory.py [N] [--ferry target/release/ferry] [--nginx /usr/sbin/nginx]

Needs openssl and, for nginx, nginx (scripts/install-peers.sh). Raise `ulimit -n` for
large N. One server at a time, each from the same client code.
"""
import os, socket, ssl, subprocess, sys, tempfile, time


def rss_anon(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def measure(name, pid, port, n):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    time.sleep(0.3)
    before = rss_anon(pid)
    conns = []
    req = b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
        s.sendall(req)
        got = b""
        while not (b"\r\n\r\n" in got and len(got.split(b"\r\n\r\n", 1)[1]) >= 4096):
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit(f"{name}: the connection closed before the answer")
            got += chunk
        conns.append(s)
    time.sleep(1.0)
    after = rss_anon(pid)
    per = (after - before) / n
    print(f"{name:12} {n} idle TLS connections: RssAnon {before/1e6:.1f} -> {after/1e6:.1f} MB, {per:,.0f} B each")
    for s in conns:
        s.close()
    return per


def main():
    args = sys.argv[1:]
    n = int(args[0]) if args and args[0].isdigit() else 1000
    ferry = args[args.index("--ferry") + 1] if "--ferry" in args else "target/release/ferry"
    nginx = args[args.index("--nginx") + 1] if "--nginx" in args else "/usr/sbin/nginx"
    d = tempfile.mkdtemp(prefix="tls-idle-")
    root = os.path.join(d, "root")
    os.mkdir(root)
    open(os.path.join(root, "f"), "wb").write(os.urandom(4096))
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    port = free_port()
    p = subprocess.Popen([ferry, "serve", "--threads", "1", "--root", root, "--listen", f"127.0.0.1:{port}",
                          "--tls-cert", cert, "--tls-key", key], stdout=subprocess.PIPE)
    print(p.stdout.readline().decode().strip())
    wait_port(port)
    measure("ferry serve", p.pid, port, n)
    p.terminate(); p.wait()
    if os.path.exists(nginx):
        port = free_port()
        conf = os.path.join(d, "nginx.conf")
        os.makedirs(os.path.join(d, "logs"), exist_ok=True)
        open(conf, "w").write(
            f"worker_processes 1; master_process off; daemon off; error_log {d}/logs/error.log warn;\n"
            f"pid {d}/nginx.pid; events {{ worker_connections {n + 100}; }}\n"
            f"http {{ access_log off; sendfile on; keepalive_timeout 65; keepalive_requests 100000000;\n"
            f" client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n"
            f" server {{ listen 127.0.0.1:{port} ssl; root {root}; ssl_certificate {cert}; ssl_certificate_key {key};\n"
            f"  ssl_session_tickets on; ssl_session_cache shared:SSL:10m; }} }}\n")
        p = subprocess.Popen([nginx, "-c", conf, "-p", d], stderr=subprocess.DEVNULL)
        wait_port(port)
        measure("nginx", p.pid, port, n)
        p.terminate(); p.wait()
    else:
        print(f"nginx not run: {nginx} not found (scripts/install-peers.sh)")


main()
