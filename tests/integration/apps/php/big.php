<?php
// ?n=BLOCKS: BLOCKS blocks of 65536 bytes, block k = sprintf('%08d', k) . 65528 x 'x',
// each written with its own echo (no output buffering), so that php-fpm splits them
// over many STDOUT records.
$n = (int)($_GET['n'] ?? 1);
header('Content-Type: application/octet-stream');
$tail = str_repeat('x', 65528);
for ($k = 0; $k < $n; $k++) {
    echo sprintf('%08d', $k), $tail;
}
