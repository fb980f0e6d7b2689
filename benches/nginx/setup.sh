#!/bin/sh
# Installs nginx, Varnish and wrk for `cargo bench --bench load`'s hit-path
# comparison.
#
#   benches/nginx/setup.sh                      install nginx (light), varnish, wrk
#   benches/nginx/setup.sh render DIR LISTEN UPSTREAM
#                                               also write DIR/nginx.conf from the
#                                               template (LISTEN, UPSTREAM: host:port)
#
# The bench renders the template and starts/stops nginx by itself: after installing,
# nothing else is needed. Rendering by hand is for running nginx outside the bench:
#   nginx -p DIR -c DIR/nginx.conf     (in front of e.g. `vcproxy sim` on UPSTREAM)
set -eu
here=$(cd "$(dirname "$0")" && pwd)

install() {
    if command -v nginx >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 &&
        { command -v varnishd >/dev/null 2>&1 || [ -x /usr/sbin/varnishd ]; }; then
        echo "nginx, varnish and wrk already installed"
        return
    fi
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    # nginx-light is enough (proxy_cache is in the core); fall back to nginx.
    if apt-cache policy nginx-light 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        pkg=nginx-light
    else
        pkg=nginx
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "$pkg" varnish wrk
    # The packaged services are not needed (and must not hold ports for nothing).
    for svc in nginx varnish varnishncsa; do
        if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet $svc 2>/dev/null; then
            $sudo systemctl stop $svc || true
        fi
    done
}

render() {
    dir=$1 listen=$2 upstream=$3
    mkdir -p "$dir/cache" "$dir/proxy_temp" "$dir/client_body"
    # Workers run as nobody when the master is root.
    chmod 0777 "$dir" "$dir/cache" "$dir/proxy_temp" "$dir/client_body"
    # The gzip server listens on the next port.
    gzip_listen="${listen%:*}:$((${listen##*:} + 1))"
    sed -e "s|@DIR@|$dir|g" -e "s|@LISTEN_GZIP@|$gzip_listen|g" -e "s|@LISTEN@|$listen|g" \
        -e "s|@UPSTREAM@|$upstream|g" \
        "$here/nginx.conf.template" >"$dir/nginx.conf"
    echo "wrote $dir/nginx.conf; start with: nginx -p $dir -c $dir/nginx.conf"
}

case "${1:-install}" in
install) install ;;
render)
    [ $# -eq 4 ] || { echo "usage: $0 render DIR LISTEN UPSTREAM" >&2; exit 2; }
    install
    render "$2" "$3" "$4"
    ;;
*) echo "usage: $0 [install | render DIR LISTEN UPSTREAM]" >&2; exit 2 ;;
esac
