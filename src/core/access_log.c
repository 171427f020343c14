/* placeholder: being written */ typedef int atr_placeholder_access_log;
