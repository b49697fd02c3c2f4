#!/usr/bin/env bash
# Write latentzoo's PyTensor configuration: a persistent compile cache and the BLAS to link.
#
# PyTensor compiles C for every new model (35-45 s cold, 1-3 s warm); keeping the cache in one
# known place outside the checkout means a fresh clone on the same machine starts warm.
# PyTensor also looks for a C BLAS at every start; a pip install has none it can link to, and
# PyTensor then warns on every run. The fix is a real BLAS (OpenBLAS) named in the config:
# no search at start-up, no warning, fast matrix products.
#
# Usage: .ci/pytensor-config.sh CACHE_DIR   (prints the path of the config file written)
set -euo pipefail
cache_dir=${1:?usage: $0 CACHE_DIR}
mkdir -p "$cache_dir/pytensor"
rc="$cache_dir/pytensorrc"

links_openblas() {
    printf 'int main(void){return 0;}\n' | ${CC:-cc} -x c - -lopenblas -o /dev/null >/dev/null 2>&1
}

# (a make target installs no system package: .ci/run installs OpenBLAS on CI machines)
{
    echo "[global]"
    echo "base_compiledir = $cache_dir/pytensor"
    echo "[blas]"
    if links_openblas; then
        echo "ldflags = -lopenblas"
    else
        # PyTensor then uses NumPy's BLAS through Python: slower products, but correct.
        echo "ldflags ="
        echo "latentzoo: no OpenBLAS to link; install it (Debian/Ubuntu: apt-get install libopenblas-dev," \
             "Fedora: dnf install openblas-devel, macOS: brew install openblas) for faster PyMC" >&2
    fi
} > "$rc"
echo "$rc"
