<?php
// error_log() without an error_log ini setting goes to the FastCGI STDERR stream.
error_log('gw-stderr-marker ' . ($_GET['tag'] ?? ''));
echo "logged\n";
