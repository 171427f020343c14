<?php
require __DIR__ . '/_env.php';
gw_print_env();
