<?php
// ?code=N -> http_response_code(N); ?status=TEXT -> header("Status: TEXT");
// ?location=URL -> Location; always three Set-Cookie fields and X-App.
if (isset($_GET['code'])) {
    http_response_code((int)$_GET['code']);
}
if (isset($_GET['status'])) {
    header('Status: ' . $_GET['status']);
}
if (isset($_GET['location'])) {
    header('Location: ' . $_GET['location']);
}
setcookie('a', '1');
setcookie('b', '2', ['path' => '/php/']);
header('Set-Cookie: c=3; HttpOnly', false);
header('X-App: php');
header('Content-Type: text/plain');
echo 'code ', http_response_code(), "\n";
