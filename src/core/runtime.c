/* placeholder: being written */ typedef int atr_placeholder_runtime;
