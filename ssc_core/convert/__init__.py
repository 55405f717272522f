"""Import checkpoints published with a method's official code into this project's checkpoint format.

``ssc-import-checkpoint --method NAME`` looks the method up in the converter registry (``registry.py``); each
method file here (``sgn.py``, ``msnet.py``, ...) registers its converter with ``@register_converter``, so a new
method only adds its own file. ``official.py`` reads the published files (mmcv / plain ``torch.save`` mappings,
``module.`` prefixes) safely, and ``keymap.py`` holds the two-way key rules the converters are written in.
"""

from ssc_core.convert.registry import Conversion, Converter, get_converter, list_converters, register_converter

__all__ = ["Conversion", "Converter", "get_converter", "list_converters", "register_converter"]
