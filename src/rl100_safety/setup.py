from setuptools import setup

package_name = 'rl100_safety'

setup(
    name=package_name,
    version='0.1.0',
    packages=[package_name],
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='rl100 maintainers',
    maintainer_email='maintainers@rl100.dev',
    description=(
        'The rl100 safety and intervention node: the only path to the robot (limits, '
        'watchdog, e-stop, human takeover).'
    ),
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'safety_node = rl100_safety.safety_node:main',
            'keyboard_teleop = rl100_safety.keyboard_teleop:main',
            'gamepad_teleop = rl100_safety.gamepad_teleop:main',
        ],
    },
)
