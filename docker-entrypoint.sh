#!/bin/sh
# The Docker image's entry point: `python bot.py "$@" --config $CHIPWATCH_CONFIG`.
#
# The config lives on the data volume (default /data/config.yaml), where the bot may edit it
# (/watch, /unwatch replace it atomically: write a temp file beside it, rename it over). On the
# first start it is copied there from the config the image ships. Before `run`, the config is
# checked: an invalid one stops the container with exit status 2 and a line saying so, rather
# than a service that looks up and is not.
set -eu

app=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
config=${CHIPWATCH_CONFIG:-/data/config.yaml}
python=${PYTHON:-python}

if [ ! -e "$config" ]; then
    mkdir -p -- "$(dirname -- "$config")"
    # A temp file and a rename: two instances starting at once on one volume both succeed.
    cp -- "$app/config.yaml" "$config.$$.tmp"
    mv -f -- "$config.$$.tmp" "$config"
    echo "chipwatch: first start: copied the shipped config to $config; edit it there" >&2
fi

command=""
given=""
for arg in "$@"; do
    case $arg in
        --config | --config=*) given=yes ;;
        -*) ;;
        *) [ -n "$command" ] || command=$arg ;;
    esac
done
[ -n "$given" ] || set -- "$@" --config "$config"

if [ "$command" = run ] && [ -z "$given" ]; then
    status=0
    # --offline: the file only. A secret problem is run's to report (a missing or malformed
    # one stops it with exit 2 too; one set for no destination is only a warning there).
    "$python" "$app/bot.py" check-config --offline --config "$config" >/dev/null || status=$?
    if [ "$status" -eq 2 ]; then  # check-config printed "config error: file:line: key: …"
        echo "chipwatch: not starting: $config is invalid (the line above says where);" \
            "exit 2: fix the file on the data volume, then start again" >&2
        exit 2
    fi
fi

exec "$python" "$app/bot.py" "$@"
