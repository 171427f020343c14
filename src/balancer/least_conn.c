/* placeholder: being written */ typedef int atr_placeholder_least_conn;
