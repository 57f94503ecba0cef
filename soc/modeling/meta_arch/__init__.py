from .soc import SOC
