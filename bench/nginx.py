"""Run nginx as the benchmark upstream and as the reference reverse proxy.

Each instance has its own prefix directory, one worker and no access log, and
runs in the foreground so that it is a child we can stop by its pid.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.processes import Pinning, Service, free_port, port_open, wait_until

# About 100 bytes, like a small JSON API answer.
UPSTREAM_BODY = (
    '{"status":"ok","service":"portico-bench-upstream",'
    '"message":"a small json answer","items":[1,2,3]}'
)

_MAIN = """\
{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
{http}
}}
"""

_UPSTREAM = """\
  server {{
    listen 127.0.0.1:{port};
    location / {{
      default_type application/json;
      return 200 '{body}';
    }}
  }}
"""

# The proxy strips /mock like a Portico route with strip_path, so both
# contenders forward the same request line to the upstream.
_PROXY = """\
  upstream backend {{
    server 127.0.0.1:{upstream_port};
    keepalive 64;
    keepalive_requests 1000000;
  }}
  server {{
    listen 127.0.0.1:{port};
    location /mock {{
      proxy_pass http://backend/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
"""


def render(prefix: Path, http_block: str) -> str:
    """Return a complete nginx.conf around one `http` block body."""
    # Workers of a root master would otherwise run as nobody, who cannot
    # write to the prefix.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return _MAIN.format(user=user, prefix=prefix, http=http_block)


def upstream_config(prefix: Path, port: int) -> str:
    """Return the config of an upstream answering 200 with UPSTREAM_BODY."""
    return render(prefix, _UPSTREAM.format(port=port, body=UPSTREAM_BODY))


def proxy_config(prefix: Path, port: int, upstream_port: int) -> str:
    """Return the config of a one-worker reverse proxy with upstream keepalive."""
    return render(prefix, _PROXY.format(port=port, upstream_port=upstream_port))


def start_nginx(
    nginx: str,
    name: str,
    config: str,
    port: int,
    *,
    work_dir: Path,
    pinning: Pinning,
    cpu: int,
    timeout: float = 10.0,
) -> Service:
    """Write `config` under work_dir/name, start nginx and wait for its port."""
    prefix = work_dir / name
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(config)

    argv = [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    service = Service(name, argv, log_dir=work_dir, cpu=cpu, pinning=pinning)
    try:
        wait_until(
            lambda: port_open(port), what=name, timeout=timeout, services=[service]
        )
    except BaseException:
        service.stop()
        raise
    return service


def start_upstream(nginx: str, work_dir: Path, pinning: Pinning) -> tuple[Service, int]:
    """Start the upstream every proxy contender talks to; return it and its port.

    It shares the load CPU with wrk, as in the reference method.
    """
    port = free_port()
    service = start_nginx(
        nginx,
        "upstream",
        upstream_config(work_dir / "upstream", port),
        port,
        work_dir=work_dir,
        pinning=pinning,
        cpu=pinning.load_cpu,
    )
    return service, port
