# Prompt diversity (DiverGen, CVPR 2024: more prompts per class, each for fewer images): the
# X-Paste prompt plus templates over LVIS synonyms, definitions, views and settings; each class
# keeps a seeded shuffle of at most 64 of its prompts, used in turn (image i: prompt i mod n,
# recorded with the image), i.e. ~16 images per prompt at 1000 images per class. Add curated
# prompts per class with prompt_file (json {name: [prompts]} or lines "name<TAB>prompt") and
# prompt_file_mode='add'. Everything else as in lvis_sd15.py.
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15_prompts.py \
#       --bank-dir data/banks/lvis_sd15_prompts
_base_ = ['./lvis_sd15.py']

prompts = dict(
    templates=[
        'a photo of a single {name}',  # X-Paste's
        'a photo of a single {synonym}, {view}',
        'a photo of a single {name}, {definition}',
        'a photo of a single {synonym} {setting}, {light}',
        'a photo of a single {colour} {name}, {view}',
    ],
    attributes=dict(
        view=['', 'seen from the front', 'seen from the side', 'seen from above', 'close-up'],
        setting=['on a white background', 'on a table', 'on the ground', 'indoors',
                 'outdoors'],
        light=['natural light', 'studio lighting', 'soft light'],
        colour=['', 'red', 'blue', 'green', 'yellow', 'black', 'white', 'brown']),
    max_prompts=64,
    order='shuffle')
