#!/bin/sh
# The profile of shell-site, a command profile (services/node/DESIGN.md, "Profile processes"):
# it reads the processing's input as JSON on stdin and prints its declarations as JSON on stdout.
# It declares a page, a static web server (python3 -m http.server) on the partition's address and
# first port, a promise that the page answers, and publishes its URL. It writes nothing itself.
set -eu
input=$(cat)
# The input is compact JSON (no spaces); the fields read here hold no quote.
field() { printf '%s' "$input" | grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | cut -d '"' -f 4; }
address=$(field address)
partition=$(field path)
title=$(field title)
port=$(printf '%s' "$input" | grep -o '"ports":{"from":[0-9]*' | head -n 1 | grep -o '[0-9]*$')
python=$(command -v python3) || { echo "python3 not found on PATH" >&2; exit 1; }
case "$address" in *:*) host="[$address]" ;; *) host=$address ;; esac
url="http://$host:$port/"
cat <<JSON
{
  "files": [
    { "path": "srv/www/index.html", "content": "<!doctype html><title>$title</title><h1>$title</h1>\n" }
  ],
  "services": {
    "http": { "command": ["$python", "-m", "http.server", "$port", "--bind", "$address", "--directory", "$partition/srv/www"] }
  },
  "promises": { "page": { "http": "$url" } },
  "publish": { "url": "$url", "title": "$title" }
}
JSON
