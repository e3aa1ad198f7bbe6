#!/usr/bin/env bash
# Post click batches to domainstats. Without -n, -d or -b: the seed's one batch, as before.
#   -u URL      server base URL (default http://127.0.0.1:5000)
#   -n LOOPS    how many batches to post (default 1)
#   -d DOMAINS  a number N (a pool of N domains, domain1.example ...) or a comma-separated list
#   -b SIZE     domains per batch, drawn at random from the pool (default: the pool, at most 100)
#   -q          print only the summary
set -uo pipefail

url=${DOMAINSTATS_URL:-http://127.0.0.1:5000}
loops=""
domains=""
size=""
quiet=0
while getopts "u:n:d:b:qh" opt; do
  case $opt in
    u) url=$OPTARG ;;
    n) loops=$OPTARG ;;
    d) domains=$OPTARG ;;
    b) size=$OPTARG ;;
    q) quiet=1 ;;
    *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; [ "$opt" = h ]; exit $? ;;
  esac
done
# The seed's batch unless asked for random ones.
seed=$([ -z "$loops$domains$size" ] && echo 1 || echo 0)
loops=${loops:-1}
for number in "$loops" ${size:+"$size"}; do
  [[ $number =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $number" >&2; exit 2; }
done

pool=()
if [ -z "$domains" ]; then
  pool=(example1.com example2.com example3)
elif [[ $domains =~ ^[1-9][0-9]*$ ]]; then
  for ((i = 1; i <= domains; i++)); do pool+=("domain$i.example"); done
else
  IFS=, read -r -a pool <<< "$domains"
fi
count=${#pool[@]}
size=${size:-$((count < 100 ? count : 100))}
((size > count)) && size=$count

ok=0
failed=0
entries=0
clicks=0
start=$(date +%s.%N)
for ((loop = 1; loop <= loops; loop++)); do
  body="{\"timestamp\": $(date +%s)"
  if [ "$seed" = 1 ]; then
    body+=', "example1.com": 80, "example2.com": 5, "example3": 12}'
    sent=3
    sent_clicks=97
  else
    sent=0
    sent_clicks=0
    declare -A picked=()
    while ((sent < size)); do
      name=${pool[$(((RANDOM * 32768 + RANDOM) % count))]}
      [ -n "${picked[$name]:-}" ] && continue
      picked[$name]=1
      n=$((RANDOM % 100 + 1))
      body+=", \"$name\": $n"
      sent=$((sent + 1))
      sent_clicks=$((sent_clicks + n))
    done
    unset picked
    body+="}"
  fi
  answer=$(curl -sS -m 10 -w ' HTTP %{http_code}' -X POST "$url/domains" \
    -H "accept: application/json" -H "Content-Type: application/json" -d "$body" 2>&1)
  if [[ $answer == *" HTTP 200" ]]; then
    ok=$((ok + 1))
    entries=$((entries + sent))
    clicks=$((clicks + sent_clicks))
  else
    failed=$((failed + 1))
  fi
  [ "$quiet" = 1 ] || echo "$answer"
done
awk -v start="$start" -v end="$(date +%s.%N)" -v n=$((ok + failed)) -v ok=$ok -v failed=$failed \
  -v entries=$entries -v clicks=$clicks -v url="$url" 'BEGIN {
    t = end - start
    printf "posted %d batches to %s in %.2fs (%.1f/s): %d ok, %d failed; %d domain entries, %d clicks accepted\n",
      n, url, t, n / (t > 0 ? t : 1), ok, failed, entries, clicks }'
[ "$failed" -eq 0 ]
