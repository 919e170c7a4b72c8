# Per-class source routing: the rare LVIS classes (frequency 'r', 337 classes, <= 10 training
# images each) are generated with Stable Diffusion 1.5 exactly as in lvis_sd15.py; the common
# and frequent ones take retrieved images (one folder per class, as lvis_folder.py). Every image
# records its route ('diffusers' / 'folder': report columns and the bank rows' source prefix).
# The build stops before any work if a class matches no route (e.g. categories without an LVIS
# "frequency" field): add a route or default=.
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_routed.py \
#       --bank-dir data/banks/lvis_routed
_base_ = ['./lvis_sd15.py']

source = dict(
    _delete_=True,
    type='RoutedSource',
    routes=[
        dict(frequency='r', source=_base_.source),
        dict(frequency=('c', 'f'),
             source=dict(type='FolderSource', root='data/lvis_retrieved', max_side=1024)),
    ])
