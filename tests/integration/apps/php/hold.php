<?php
// Counts requests in flight in GW_STATE_DIR/cur (and the most ever in max),
// then sleeps ?ms=N or waits (at most 10 s) until GW_STATE_DIR/gate-NAME exists.
$dir = getenv('GW_STATE_DIR');
$lock = fopen("$dir/lock", 'c');

// Counter files are replaced atomically (rename), so a reader never sees one half written.
function gw_put($path, $value)
{
    file_put_contents("$path.tmp", (string)$value);
    rename("$path.tmp", $path);
}

function gw_bump($lock, $dir, $delta)
{
    flock($lock, LOCK_EX);
    $cur = (int)@file_get_contents("$dir/cur") + $delta;
    gw_put("$dir/cur", $cur);
    if ($delta > 0) {
        $max = (int)@file_get_contents("$dir/max");
        if ($cur > $max) {
            gw_put("$dir/max", $cur);
        }
        gw_put("$dir/started", (int)@file_get_contents("$dir/started") + 1);
    }
    flock($lock, LOCK_UN);
}

gw_bump($lock, $dir, 1);
$gated = null;
if (isset($_GET['ms'])) {
    usleep((int)$_GET['ms'] * 1000);
}
if (isset($_GET['gate'])) {
    $g = "$dir/gate-" . basename($_GET['gate']);
    $end = microtime(true) + 10;
    while (!file_exists($g) && microtime(true) < $end) {
        usleep(20000);
    }
    $gated = file_exists($g);
}
gw_bump($lock, $dir, -1);
header('Content-Type: application/json');
echo json_encode(['pid' => getmypid(), 'gated' => $gated]), "\n";
