<?php
// The request body (php://input, streamed: the pool turns enable_post_data_reading off)
// as its length and SHA-256.
$ctx = hash_init('sha256');
$n = 0;
$in = fopen('php://input', 'rb');
while (!feof($in)) {
    $d = fread($in, 1 << 20);
    if ($d === false || $d === '') {
        break;
    }
    $n += strlen($d);
    hash_update($ctx, $d);
}
header('Content-Type: application/json');
echo json_encode(['len' => $n, 'sha256' => hash_final($ctx),
                  'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null]), "\n";
