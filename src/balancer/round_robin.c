/* placeholder: being written */ typedef int atr_placeholder_round_robin;
