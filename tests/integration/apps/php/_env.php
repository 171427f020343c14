<?php
// Shared by index.php and env.php: print what PHP sees of the request as JSON.
function gw_print_env()
{
    $keys = ['SCRIPT_NAME', 'SCRIPT_FILENAME', 'DOCUMENT_ROOT', 'QUERY_STRING', 'REQUEST_URI',
             'REQUEST_METHOD', 'SERVER_PROTOCOL', 'REMOTE_ADDR', 'REMOTE_PORT', 'SERVER_PORT',
             'SERVER_NAME', 'SERVER_ADDR', 'GATEWAY_INTERFACE', 'PATH_INFO', 'CONTENT_LENGTH',
             'CONTENT_TYPE', 'REQUEST_SCHEME', 'PATH_TRANSLATED', 'PHP_SELF'];
    $server = [];
    foreach ($keys as $k) {
        if (array_key_exists($k, $_SERVER)) {
            $server[$k] = (string)$_SERVER[$k];
        }
    }
    $http = [];
    foreach ($_SERVER as $k => $v) {
        if (strncmp($k, 'HTTP_', 5) === 0) {
            $http[$k] = (string)$v;
        }
    }
    header('Content-Type: application/json');
    echo json_encode(['script' => basename($_SERVER['SCRIPT_FILENAME'] ?? ''),
                      'pid' => getmypid(), 'server' => $server, 'http' => $http],
                     JSON_UNESCAPED_SLASHES), "\n";
}
