"""The logic of the annotation builders: dataset split lists or folders -> annotation JSON (standard library only).

Each ``util_scripts/<name>_json.py`` parses its command line and calls ``build`` here.
"""
