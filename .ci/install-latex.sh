#!/usr/bin/env bash
# Install the LaTeX needed by the `latex` tests (pdflatex + booktabs, multirow, standalone, siunitx, xcolor).
#
# The smallest and fastest route on Debian 12: texlive-latex-base + texlive-latex-recommended from apt, and only
# the three style trees we need (multirow, standalone, siunitx) unpacked from texlive-latex-extra / texlive-science into
# TEXMFLOCAL, so pdflatex finds them without TEXINPUTS. Idempotent: a second run only checks and exits.
# Runs as root on Debian 12; prints what it did to stderr.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

have_all() {
  command -v pdflatex >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1 || return 1
  local sty
  for sty in booktabs.sty multirow.sty standalone.cls siunitx.sty xcolor.sty; do
    [ -n "$(kpsewhich "$sty" 2>/dev/null)" ] || return 1
  done
}

if have_all; then
  echo "install-latex: pdflatex and all styles already present" >&2
  exit 0
fi

apt_get() { apt-get -o Dpkg::Use-Pty=0 -qq "$@"; }
# Skip dpkg's man pages and docs: they are most of the unpacking time and are never needed here.
if [ ! -f /etc/dpkg/dpkg.cfg.d/01-noisybench-nodoc ] && [ -d /etc/dpkg/dpkg.cfg.d ]; then
  printf 'path-exclude=/usr/share/doc/texlive*\npath-exclude=/usr/share/doc/texmf*\n' \
    > /etc/dpkg/dpkg.cfg.d/01-noisybench-nodoc
fi
apt_get update
apt_get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended poppler-utils >/dev/null

local_tree="$(kpsewhich -var-value TEXMFLOCAL 2>/dev/null || true)"
local_tree="${local_tree:-/usr/local/share/texmf}"
target="$local_tree/tex/latex"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt-get download drops privileges to _apt, which must be able to write there
chown _apt "$work" 2>/dev/null || chmod 777 "$work"
missing=0
for sty in multirow.sty standalone.cls siunitx.sty; do
  [ -n "$(kpsewhich "$sty" 2>/dev/null)" ] || missing=1
done
if [ "$missing" = 1 ]; then
  (cd "$work" && apt-get download -qq texlive-latex-extra texlive-science >/dev/null)
  for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
  done
  mkdir -p "$target"
  for name in multirow standalone siunitx; do
    rm -rf "${target:?}/$name"
    cp -r "$work/root/usr/share/texlive/texmf-dist/tex/latex/$name" "$target/$name"
  done
  mktexlsr "$local_tree" >/dev/null 2>&1
fi

if ! have_all; then
  echo "install-latex: pdflatex or a style file is still missing after the install" >&2
  exit 1
fi
echo "install-latex: pdflatex ($(pdflatex --version | head -1)) with booktabs, multirow, standalone, siunitx" >&2
