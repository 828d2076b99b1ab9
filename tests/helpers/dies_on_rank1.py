"""main.py under torchrun, except that rank 1 dies at its first training epoch (a crashed node)."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import main  # noqa: E402

if os.environ.get('RANK') == '1':
    main.train_epoch = lambda *args, **kwargs: os._exit(3)
sys.exit(main.main(sys.argv[1:]))
