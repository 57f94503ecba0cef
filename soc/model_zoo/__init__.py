"""SOC's configs by name, e.g. ``get_config("ref_ytvos/soc_swin_t_joint")``, in a source checkout and in an
installed ``soc-detectron2`` alike."""

from .model_zoo import get_config, get_config_file, list_configs
